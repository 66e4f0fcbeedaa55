"""Tiny NIfTI volumes with chosen geometry, written by the tests themselves."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

# A rotation about z by 30 degrees: a non-identity direction that catches axis-order mistakes.
_c, _s = np.cos(np.pi / 6), np.sin(np.pi / 6)
OBLIQUE_DIRECTION = (_c, -_s, 0.0, _s, _c, 0.0, 0.0, 0.0, 1.0)


def brain_volume(shape_zyx=(10, 14, 12), seed: int = 0) -> np.ndarray:
    """An ellipsoid 'brain' with two tissue intensities and a zero background."""
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape_zyx], indexing="ij")
    r = np.sqrt(z**2 + y**2 + x**2)
    volume = np.where(r < 0.8, 100.0, 0.0) + np.where(r < 0.4, 50.0, 0.0)
    volume[r < 0.8] += rng.normal(0, 2, size=int((r < 0.8).sum()))
    return volume.astype(np.float32)


def write_nifti(path: Path | str, array: np.ndarray, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0),
                direction=(1, 0, 0, 0, 1, 0, 0, 0, 1), dtype=None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.asarray(array)
    image = sitk.GetImageFromArray(array.astype(dtype) if dtype is not None else array)
    if image.GetDimension() == 3:
        image.SetSpacing(spacing)
        image.SetOrigin(origin)
        image.SetDirection(direction)
    sitk.WriteImage(image, str(path))
    return path
