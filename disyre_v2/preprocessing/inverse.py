"""Map arrays on the preprocessed grid back to the raw grid (for exporting anomaly maps).

The inverse of preprocessing: undo the resampling (linear interpolation by default, in physical
space), put the crop back into an array of the reoriented input's size filled with 0, and undo the
reorientation (an exact permutation of axes). Without resampling the round trip is an exact identity
inside the crop box.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from disyre_v2.imageio.geometry import Geometry
from disyre_v2.preprocessing.orientation import reorient_back
from disyre_v2.preprocessing.resampling import resample_array


def raw_geometry(properties: dict) -> Geometry:
    """The grid of the raw input files, to write restored maps with (e.g. write_float_map)."""
    return Geometry.from_dict(properties["raw_geometry"])


def restore_to_raw(array: np.ndarray, properties: dict, interpolation: str = "linear", fill: float = 0.0) -> np.ndarray:
    """``array`` (Z, Y, X) or (C, Z, Y, X) on the preprocessed grid → the same on the raw grid.

    ``properties`` is the CASE.json dictionary (or the one preprocess_case returns). Use
    ``interpolation="nearest"`` for masks and labels; float maps come back as float32.
    """
    array = np.asarray(array)
    preprocessed_shape = tuple(properties["shape_preprocessed"])
    if array.shape[-3:] != preprocessed_shape or array.ndim not in (3, 4):
        case = f" of case {properties['case_id']}" if properties.get("case_id") else ""
        raise ValueError(
            f"restore_to_raw got an array of shape {array.shape}; the preprocessed grid{case} is "
            f"{preprocessed_shape} (optionally with a leading channel axis)."
        )
    if array.ndim == 4:
        return np.stack([restore_to_raw(channel, properties, interpolation, fill) for channel in array])

    cropped = Geometry.from_dict(properties["cropped_geometry"])
    if properties["resampled"]:
        preprocessed = Geometry.from_dict(properties["preprocessed_geometry"])
        array = resample_array(array, preprocessed, cropped, interpolation)
    dtype = np.float32 if np.issubdtype(array.dtype, np.floating) else array.dtype
    # Properties written before reorientation existed have no oriented grid: it is the raw one.
    oriented = Geometry.from_dict(properties.get("oriented_geometry", properties["raw_geometry"]))
    out = np.full(oriented.shape_zyx, fill, dtype=dtype)
    (z0, z1), (y0, y1), (x0, x1) = properties["crop_box"]
    out[z0:z1, y0:y1, x0:x1] = array
    if properties.get("orientation") is None:
        return out
    return reorient_back(out, oriented, raw_geometry(properties))


def extend_beyond_mask(array: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``array`` (Z, Y, X) with every voxel outside ``mask`` set to the value of its nearest voxel inside.

    Before a map is interpolated back to a finer grid, so that input voxels at the brain's edge take
    the edge's values rather than a mix with the zero background."""
    if mask.all() or not mask.any():
        return array
    nearest = ndimage.distance_transform_edt(~mask, return_distances=False, return_indices=True)
    return array[tuple(nearest)]
