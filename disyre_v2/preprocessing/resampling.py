"""Resampling between grids with SimpleITK: cubic B-spline for images, nearest for masks,
linear for maps brought back to the raw grid.

A resampled grid covers the same physical extent as its source (voxel corners aligned, not voxel
centres): with n' = round(n·s/s') voxels of spacing s', the first voxel centre moves by
(s' − s)/2 along each axis of the direction matrix. Points that fall just outside the source
(rounding of n') take the nearest voxel's value rather than 0.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import SimpleITK as sitk

from disyre_v2.imageio.geometry import Geometry

# Spacings closer than this (relative) count as equal: NIfTI headers differ in float rounding.
SPACING_RTOL = 1e-3

INTERPOLATORS = {
    "cubic": sitk.sitkBSpline,
    "linear": sitk.sitkLinear,
    "nearest": sitk.sitkNearestNeighbor,
}


def spacing_differs(spacing: Sequence[float], target: Sequence[float], rtol: float) -> bool:
    """True when any axis differs by more than ``rtol`` (relative)."""
    return not np.allclose(np.asarray(spacing, float), np.asarray(target, float), rtol=rtol, atol=0.0)


def resampled_geometry(geometry: Geometry, target_spacing: Sequence[float]) -> Geometry:
    """The grid of spacing ``target_spacing`` (xyz) covering the extent of ``geometry``."""
    spacing = np.asarray(geometry.spacing, dtype=np.float64)
    target = np.asarray(target_spacing, dtype=np.float64)
    if target.shape != (3,) or not (target > 0).all():
        raise ValueError(f"target spacing must be three positive numbers (x, y, z), got {list(target_spacing)}")
    size = np.maximum(1, np.floor(np.asarray(geometry.size) * spacing / target + 0.5)).astype(int)
    direction = np.asarray(geometry.direction, dtype=np.float64).reshape(3, 3)
    origin = np.asarray(geometry.origin) + direction @ ((target - spacing) / 2.0)
    return Geometry(
        spacing=tuple(float(v) for v in target),
        origin=tuple(float(v) for v in origin),
        direction=geometry.direction,
        size=tuple(int(v) for v in size),
    )


def resample_array(array: np.ndarray, source: Geometry, target: Geometry, interpolation: str) -> np.ndarray:
    """Resample a (Z, Y, X) array from grid ``source`` onto grid ``target`` (physical space).

    ``interpolation`` is "cubic", "linear" or "nearest". Float input gives float32 output; bool or
    integer input must use "nearest" and keeps its dtype.
    """
    if interpolation not in INTERPOLATORS:
        raise ValueError(f"interpolation must be one of {sorted(INTERPOLATORS)}, got {interpolation!r}")
    array = np.asarray(array)
    if array.shape != source.shape_zyx:
        raise ValueError(f"array of shape {array.shape} is not on the source grid {source.shape_zyx}")
    is_float = np.issubdtype(array.dtype, np.floating)
    if not is_float and interpolation != "nearest":
        raise ValueError(f"{interpolation} interpolation of a {array.dtype} array: use 'nearest' for masks and labels")
    work = array.astype(np.float32 if is_float else (np.uint8 if array.dtype == bool else array.dtype), copy=False)
    image = source.apply_to(sitk.GetImageFromArray(work))
    resampler = sitk.ResampleImageFilter()
    resampler.SetSize([int(v) for v in target.size])
    resampler.SetOutputSpacing(target.spacing)
    resampler.SetOutputOrigin(target.origin)
    resampler.SetOutputDirection(target.direction)
    resampler.SetInterpolator(INTERPOLATORS[interpolation])
    resampler.SetDefaultPixelValue(0)
    resampler.SetUseNearestNeighborExtrapolator(True)
    out = sitk.GetArrayFromImage(resampler.Execute(image))
    return out.astype(bool) if array.dtype == bool else out
