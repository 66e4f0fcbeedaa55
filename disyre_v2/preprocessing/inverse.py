"""Map arrays on the preprocessed grid back to the raw grid (for exporting anomaly maps).

The inverse of preprocessing: undo the resampling (linear interpolation by default, in physical
space), then put the crop back into a raw-sized array filled with 0. Without resampling the round
trip is an exact identity inside the crop box.
"""
from __future__ import annotations

import numpy as np

from disyre_v2.imageio.geometry import Geometry
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
    out = np.full(tuple(properties["shape_raw"]), fill, dtype=dtype)
    (z0, z1), (y0, y1), (x0, x1) = properties["crop_box"]
    out[z0:z1, y0:y1, x0:x1] = array
    return out
