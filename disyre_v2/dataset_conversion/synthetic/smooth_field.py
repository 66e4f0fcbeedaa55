"""Smooth random fields: Gaussian bumps on a regular control grid, evaluated separably.

One building block serves the non-linear warp, the bias field, the brain-mask errors and the
irregular lesion outlines. Because the basis is a tensor product, evaluating the field on a grid
is three small matrix products instead of a 3D convolution, which keeps a 1 mm subject cheap.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

# With bumps of width sigma = control step, sum_i exp(-(z - z_i)^2 / sigma^2) is sqrt(pi) for
# every z (to 1e-4), so N(0, 1) coefficients scaled by pi^(-3/4) give a field of unit variance.
_UNIT_VARIANCE_SCALE = np.pi ** -0.75


@dataclass(frozen=True)
class SmoothField:
    """``n_components`` stationary random fields of unit variance over a box in millimetres."""

    coefficients: np.ndarray  # (C, nz, ny, nx)
    first_point_mm: np.ndarray  # (3,) position of control point 0 on each axis (z, y, x)
    step_mm: float  # control spacing = width (sigma) of each bump = correlation length

    def basis(self, positions_mm: np.ndarray, axis: int) -> np.ndarray:
        """Bump values (N, n_axis) at ``positions_mm`` along ``axis``."""
        n = self.coefficients.shape[1 + axis]
        centres = self.first_point_mm[axis] + self.step_mm * np.arange(n)
        offsets = (np.asarray(positions_mm, np.float64)[:, None] - centres[None, :]) / self.step_mm
        return np.exp(-0.5 * offsets ** 2)

    def on_grid(self, axes_mm: Sequence[np.ndarray]) -> np.ndarray:
        """The field on the grid spanned by the three coordinate vectors: (C, Nz, Ny, Nx) float32."""
        bz, by, bx = (self.basis(a, i) for i, a in enumerate(axes_mm))
        c = self.coefficients.shape[0]
        field = self.coefficients @ bx.T  # (C, nz, ny, Nx)
        field = by @ field  # (C, nz, Ny, Nx)
        nz, ny_out, nx_out = field.shape[1], field.shape[2], field.shape[3]
        field = bz.astype(np.float32) @ field.reshape(c, nz, ny_out * nx_out).astype(np.float32)  # (C, Nz, Ny*Nx)
        return field.reshape(c, len(axes_mm[0]), ny_out, nx_out)


def random_smooth_field(rng: np.random.Generator, low_mm: Sequence[float], high_mm: Sequence[float],
                        step_mm: float, n_components: int = 1) -> SmoothField:
    """A unit-variance smooth field covering the box [low, high] (mm, z y x) with correlation ``step_mm``.

    Control points extend two steps beyond the box so the variance does not drop at its edges.
    """
    low = np.asarray(low_mm, np.float64) - 2 * step_mm
    high = np.asarray(high_mm, np.float64) + 2 * step_mm
    counts = np.maximum(np.ceil((high - low) / step_mm).astype(int) + 1, 1)
    coefficients = rng.standard_normal((n_components, *counts)) * _UNIT_VARIANCE_SCALE
    return SmoothField(coefficients=coefficients, first_point_mm=low, step_mm=float(step_mm))
