"""Subject-specific geometry: a random affine, a smooth non-linear warp and optional local expansions.

Everything is a pull-back: for each output voxel at grid-frame position y (mm) we compute the
template position it samples,

    x(y) = c + R^T S^-1 (y + u(y) + sum_k r_k(y) - c - d),

with R a rotation, S the per-axis scale of the subject relative to the template, d a translation,
c the template brain centre, u the smooth warp and r_k radial expansions (the tumour's mass effect).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from disyre_v2.dataset_conversion.synthetic.anatomy import TemplateAnatomy
from disyre_v2.dataset_conversion.synthetic.smooth_field import SmoothField, random_smooth_field

MAX_ROTATION_DEG = 8.0
SCALE_RANGE = (0.92, 1.08)
MAX_TRANSLATION_MM = 5.0
WARP_RMS_RANGE_MM = (2.0, 3.0)
WARP_CORRELATION_MM = 20.0
# Output voxels farther than this from the affinely mapped template brain are background for sure.
CROP_MARGIN_MM = 16.0


@dataclass(frozen=True)
class RadialExpansion:
    """Pull-back displacement r(y) = -gamma (y - c) exp(-|y - c|^2 / (2 sigma^2)).

    Tissue around c is pushed outwards (a mass effect); gamma < 1 keeps the map one-to-one, since
    the radial derivative of the pull-back, 1 - gamma (1 - r^2/sigma^2) e^(-r^2/2sigma^2), stays > 0.
    """

    centre_mm: tuple[float, float, float]
    gamma: float
    sigma_mm: float

    def on_grid(self, axes_mm: Sequence[np.ndarray]) -> list[np.ndarray]:
        offsets = [np.asarray(a, np.float32) - np.float32(c) for a, c in zip(axes_mm, self.centre_mm)]
        oz, oy, ox = offsets[0][:, None, None], offsets[1][None, :, None], offsets[2][None, None, :]
        weight = np.exp(-(oz ** 2 + oy ** 2 + ox ** 2) / np.float32(2 * self.sigma_mm ** 2)) * np.float32(-self.gamma)
        return [weight * oz, weight * oy, weight * ox]


@dataclass(frozen=True)
class SubjectDeformation:
    rotation: np.ndarray  # 3x3, grid frame
    scale: np.ndarray  # (3,) subject size / template size per axis
    translation_mm: np.ndarray  # (3,)
    centre_mm: np.ndarray  # (3,) template brain centre
    warp: SmoothField  # 3 components of unit variance
    warp_rms_mm: float  # RMS length of u over the output crop
    expansions: tuple[RadialExpansion, ...] = ()

    def with_expansion(self, expansion: RadialExpansion) -> "SubjectDeformation":
        return dataclasses.replace(self, expansions=self.expansions + (expansion,))

    @property
    def pull_back_matrix(self) -> np.ndarray:
        return self.rotation.T @ np.diag(1.0 / self.scale)

    def forward_affine(self, points_mm: np.ndarray) -> np.ndarray:
        """Where template points (N, 3) land in the subject, ignoring the small non-linear parts."""
        return self.centre_mm + self.translation_mm + (np.asarray(points_mm) - self.centre_mm) @ (self.rotation.T @ np.diag(self.scale))

    def output_box(self, template: TemplateAnatomy) -> tuple[slice, slice, slice]:
        """Index box of the output grid that can contain brain."""
        low, high = (np.asarray(c, float) for c in template.brain_box_mm)
        low, high = low - CROP_MARGIN_MM, high + CROP_MARGIN_MM
        corners = np.array([[(low, high)[b >> k & 1][k] for k in range(3)] for b in range(8)], float)
        mapped = self.forward_affine(corners)
        lo = np.floor(mapped.min(0) / template.spacing).astype(int)
        hi = np.ceil(mapped.max(0) / template.spacing).astype(int) + 1
        return tuple(slice(max(int(a), 0), min(int(b), n)) for a, b, n in zip(lo, hi, template.shape))

    def template_coordinates(self, axes_mm: Sequence[np.ndarray]) -> np.ndarray:
        """x(y) for the grid spanned by ``axes_mm``: (3, Nz, Ny, Nx) float32 grid-frame mm."""
        u = self.warp.on_grid(axes_mm)
        rms = float(np.sqrt(np.mean(np.sum(u.astype(np.float64) ** 2, axis=0))))
        u *= np.float32(self.warp_rms_mm / max(rms, 1e-6))  # exact RMS over the box, not just in expectation
        for expansion in self.expansions:
            for component, r in zip(u, expansion.on_grid(axes_mm)):
                component += r
        base = [np.asarray(a, np.float32) - np.float32(c + d) for a, c, d in zip(axes_mm, self.centre_mm, self.translation_mm)]
        shaped = (base[0][:, None, None], base[1][None, :, None], base[2][None, None, :])
        for component, b in zip(u, shaped):
            component += b  # u now holds y + u(y) - c - d
        m = self.pull_back_matrix.astype(np.float32)
        coords = np.empty_like(u)
        for i in range(3):
            coords[i] = m[i, 0] * u[0] + m[i, 1] * u[1] + m[i, 2] * u[2] + np.float32(self.centre_mm[i])
        return coords


def rotation_matrix(angles_rad: Sequence[float]) -> np.ndarray:
    """Rotation about the z, y and x axes of the grid frame, applied in that order."""
    rz, ry, rx = angles_rad
    cz, sz, cy, sy, cx, sx = np.cos(rz), np.sin(rz), np.cos(ry), np.sin(ry), np.cos(rx), np.sin(rx)
    about_z = np.array([[1, 0, 0], [0, cz, -sz], [0, sz, cz]])  # turns the (y, x) plane
    about_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    about_x = np.array([[cx, -sx, 0], [sx, cx, 0], [0, 0, 1]])
    return about_x @ about_y @ about_z


def sample_deformation(rng: np.random.Generator, template: TemplateAnatomy) -> SubjectDeformation:
    """Rotation +-8 deg per axis, scale 0.92-1.08 per axis, translation +-5 mm, warp RMS 2-3 mm."""
    angles = np.deg2rad(rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG, 3))
    scale = rng.uniform(*SCALE_RANGE, 3)
    translation = rng.uniform(-MAX_TRANSLATION_MM, MAX_TRANSLATION_MM, 3)
    extent = np.asarray(template.shape, float) * template.spacing
    warp = random_smooth_field(rng, np.zeros(3), extent, WARP_CORRELATION_MM, n_components=3)
    low, high = (np.asarray(c, float) for c in template.brain_box_mm)
    return SubjectDeformation(rotation=rotation_matrix(angles), scale=scale, translation_mm=translation,
                              centre_mm=(low + high) / 2.0, warp=warp,
                              warp_rms_mm=float(rng.uniform(*WARP_RMS_RANGE_MM)))
