"""Reading and writing images with their geometry (SimpleITK)."""
from disyre_v2.imageio.errors import ImageFormatError
from disyre_v2.imageio.geometry import Geometry, check_same_grid
from disyre_v2.imageio.reader import read_case, read_image, read_label, read_mask, read_sitk_image
from disyre_v2.imageio.writer import write_float_map, write_image, write_mask

__all__ = [
    "Geometry",
    "ImageFormatError",
    "check_same_grid",
    "read_case",
    "read_image",
    "read_label",
    "read_mask",
    "read_sitk_image",
    "write_float_map",
    "write_image",
    "write_mask",
]
