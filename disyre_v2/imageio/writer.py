"""Write arrays with a given geometry, atomically: a temporary file in the same folder, then rename."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from disyre_v2.imageio.atomic import atomic_path
from disyre_v2.imageio.geometry import Geometry


def _image_suffix(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii", ".mha", ".nrrd"):
        if name.endswith(suffix):
            return suffix
    raise ValueError(f"Cannot tell the image format of {path}: use .nii.gz, .nii, .mha or .nrrd.")


def write_image(array: np.ndarray, geometry: Geometry, path: Path | str, dtype=np.float32) -> Path:
    """Write a (Z, Y, X) array on ``geometry`` to ``path`` atomically; returns the path."""
    path = Path(path)
    array = np.asarray(array)
    if array.shape != geometry.shape_zyx:
        raise ValueError(f"Array of shape {array.shape} does not fit the grid {geometry.shape_zyx} of {path}.")
    image = geometry.apply_to(sitk.GetImageFromArray(array.astype(dtype, copy=False)))
    with atomic_path(path, _image_suffix(path)) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=path.name.endswith(".gz"))
    return path


def write_float_map(array: np.ndarray, geometry: Geometry, path: Path | str) -> Path:
    """A float32 map (anomaly scores, restorations)."""
    return write_image(array, geometry, path, np.float32)


def write_mask(array: np.ndarray, geometry: Geometry, path: Path | str) -> Path:
    """A uint8 mask or label map; values must fit in 0..255."""
    array = np.asarray(array)
    if array.size and (array.min() < 0 or array.max() > 255):
        raise ValueError(f"Mask values for {path} must lie in 0..255.")
    return write_image(array, geometry, path, np.uint8)
