"""Crop to the bounding box of the brain mask, and the geometry of the cropped grid."""
from __future__ import annotations

import numpy as np

from disyre_v2.imageio.geometry import Geometry

# A crop box is [[z0, z1], [y0, y1], [x0, x1]], half-open, in voxels of the raw (Z, Y, X) array.
CropBox = list[list[int]]


def brain_bounding_box(mask: np.ndarray) -> CropBox:
    """The smallest box holding every True voxel of a (Z, Y, X) mask."""
    if mask.ndim != 3:
        raise ValueError(f"brain_bounding_box expects a (Z, Y, X) mask, got shape {mask.shape}")
    if not mask.any():
        raise ValueError("The brain mask is empty: there is no bounding box to crop to.")
    box = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        present = np.flatnonzero(mask.any(axis=other))
        box.append([int(present[0]), int(present[-1]) + 1])
    return box


def crop_to_box(array: np.ndarray, box: CropBox) -> np.ndarray:
    """Crop the last three (Z, Y, X) axes of ``array`` to ``box``."""
    (z0, z1), (y0, y1), (x0, x1) = box
    return array[..., z0:z1, y0:y1, x0:x1]


def box_shape(box: CropBox) -> tuple[int, int, int]:
    return tuple(int(hi - lo) for lo, hi in box)


def cropped_geometry(geometry: Geometry, box: CropBox) -> Geometry:
    """The grid of the cropped array: same spacing and direction, origin at the box's first voxel."""
    start_xyz = np.array([box[2][0], box[1][0], box[0][0]], dtype=np.float64)
    direction = np.asarray(geometry.direction, dtype=np.float64).reshape(3, 3)
    origin = np.asarray(geometry.origin) + direction @ (start_xyz * np.asarray(geometry.spacing))
    size_zyx = box_shape(box)
    return Geometry(
        spacing=geometry.spacing,
        origin=tuple(float(v) for v in origin),
        direction=geometry.direction,
        size=tuple(int(v) for v in reversed(size_zyx)),
    )
