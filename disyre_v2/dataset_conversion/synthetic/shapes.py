"""Lesion outlines as implicit surfaces: phi < 0 inside, phi ~ signed distance in mm near the surface.

Shapes are defined at unit size and scaled by ``scale_mm``; a smooth random field added to phi makes
the outline irregular. The field is drawn in unit coordinates, so a shape keeps its character when
``fit_scale`` grows or shrinks it to reach a target volume.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from disyre_v2.dataset_conversion.synthetic.lesions import box_around, box_axes_mm, partial_volume
from disyre_v2.dataset_conversion.synthetic.smooth_field import SmoothField, random_smooth_field

NOISE_STEP_UNIT = 0.45  # correlation length of the outline's irregularity, in shape units


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random rotation (QR of a Gaussian matrix with the sign fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q *= np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q


def outline_noise(rng: np.random.Generator, extent: float) -> SmoothField:
    return random_smooth_field(rng, [-extent] * 3, [extent] * 3, NOISE_STEP_UNIT)


@dataclass(frozen=True)
class IrregularEllipsoid:
    radii: tuple[float, float, float]  # at unit scale
    rotation: np.ndarray
    noise: SmoothField
    roughness: float  # std of the outline perturbation, in units of the shape size

    @property
    def extent(self) -> float:
        return max(self.radii) * (1.0 + 3.0 * self.roughness) + 0.1

    def phi_unit(self, axes: list[np.ndarray]) -> np.ndarray:
        q = [axes[0][:, None, None], axes[1][None, :, None], axes[2][None, None, :]]
        rho2 = 0.0
        for i in range(3):
            rotated = self.rotation[i, 0] * q[0] + self.rotation[i, 1] * q[1] + self.rotation[i, 2] * q[2]
            rho2 = rho2 + (rotated / self.radii[i]) ** 2
        mean_radius = float(np.mean(self.radii))
        phi = (np.sqrt(rho2) - 1.0) * mean_radius
        return (phi + self.roughness * mean_radius * self.noise.on_grid(axes)[0]).astype(np.float32)


@dataclass(frozen=True)
class Wedge:
    """A cone with its base on the cortex and its apex at unit depth along ``axis`` (inwards)."""

    axis: np.ndarray  # unit vector, grid frame (z, y, x)
    tan_half_angle: float
    outward: float  # how far the base reaches outwards of the centre point
    noise: SmoothField
    roughness: float

    @property
    def extent(self) -> float:
        return max(1.0, self.tan_half_angle + self.outward) * (1.0 + 3.0 * self.roughness) + 0.2

    def phi_unit(self, axes: list[np.ndarray]) -> np.ndarray:
        q = [axes[0][:, None, None], axes[1][None, :, None], axes[2][None, None, :]]
        a = self.axis
        depth = a[0] * q[0] + a[1] * q[1] + a[2] * q[2]
        radial = np.sqrt(np.maximum(q[0] ** 2 + q[1] ** 2 + q[2] ** 2 - depth ** 2, 0.0))
        cos = 1.0 / np.sqrt(1.0 + self.tan_half_angle ** 2)
        cone = (radial - (1.0 - depth) * self.tan_half_angle) * cos
        phi = np.maximum(cone, -(depth + self.outward))
        return (phi + self.roughness * self.noise.on_grid(axes)[0]).astype(np.float32)


def signed_distance(shape, centre_vox: np.ndarray, scale_mm: float, spacing: float,
                    crop_shape: tuple[int, int, int]) -> tuple[tuple[slice, slice, slice], np.ndarray]:
    """phi (mm) of ``shape`` scaled by ``scale_mm`` and centred on ``centre_vox``, on the box that holds it."""
    box = box_around(centre_vox, shape.extent * scale_mm / spacing, crop_shape)
    axes = [a / scale_mm for a in box_axes_mm(box, spacing, centre_vox)]
    return box, shape.phi_unit(axes) * np.float32(scale_mm)


def fit_scale(shape, centre_vox: np.ndarray, spacing: float, weight: np.ndarray, target_voxels: float,
              scale_range_mm: tuple[float, float], iterations: int = 9) -> float:
    """The scale at which sum(partial_volume * weight) reaches ``target_voxels`` (bisection in log scale).

    ``weight`` (on the crop) is the share of each voxel the lesion may take, e.g. the tissue fraction.
    Returns the upper end of the range when even that cannot reach the target.
    """
    def volume(scale: float) -> float:
        box, phi = signed_distance(shape, centre_vox, scale, spacing, weight.shape)
        return float(np.sum(partial_volume(phi, spacing) * weight[box], dtype=np.float64))

    low, high = np.log(scale_range_mm[0]), np.log(scale_range_mm[1])
    if volume(float(np.exp(high))) <= target_voxels:
        return float(np.exp(high))
    for _ in range(iterations):
        middle = 0.5 * (low + high)
        if volume(float(np.exp(middle))) < target_voxels:
            low = middle
        else:
            high = middle
    return float(np.exp(0.5 * (low + high)))
