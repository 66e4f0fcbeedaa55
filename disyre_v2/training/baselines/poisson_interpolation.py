"""Poisson Image Interpolation (PII; Tan et al., "Detecting Outliers with Poisson Image Interpolation",
MICCAI 2021): FPI's foreign patch blended in the gradient domain.

Per sample: a square region Ω (the patch) and an interpolation factor α; the foreign slice g (another
slice of the batch) lends its gradients to Ω. The blend f solves the discrete Poisson equation of
Pérez et al. (2003), which the PII paper uses, with the image x as the Dirichlet boundary:

    p ∈ Ω:  |N_p| f_p − Σ_{q ∈ N_p ∩ Ω} f_q = Σ_{q ∈ N_p \\ Ω} x_q + Σ_{q ∈ N_p} v_pq   (Poisson)

with N_p the 4-neighbours of p and the guidance field of PII, the interpolated gradients where the
larger one wins (the paper's guidance field, an α-weighted form of Pérez et al.'s mixed gradients):

    v_pq = (1 − α)(x_p − x_q)   if |(1 − α)(x_p − x_q)| > |α(g_p − g_q)|,
           α(g_p − g_q)         otherwise.                                          (guidance)

The label is α on the pixels of Ω the blend changed, 0 elsewhere (the authors' code keeps α only where
the corrupted image differs from the original). Ω is a rectangle (a square clipped to the slice
without its outermost ring), so the system is the 5-point Laplacian with Dirichlet boundary on a
rectangle, diagonalised exactly by the type-I discrete sine transform: solved with scipy.fft.dstn.

The draws follow the paper's code (jemtan/PII, self_sup_task_poisson.py): the centre uniform in the
central 80 % of the slice, the half-width uniform in [round(0.05·P), round(0.2·P)) pixels (a square of
10-40 % of the slice side), α ~ U(0.05, 0.95), one patch in every slice. The foreign slice is another
slice of the batch (the authors pair the images of a batch; UPD draws any training image). As in
the UPD benchmark's brain-MRI version, the centre lies on the brain and the blend and the label are
kept on the brain (the background stays 0). Channels share Ω and α; each is solved on its own and
clipped to its slice's range, as the authors clip each image.
"""
from __future__ import annotations

import functools

import numpy as np
import scipy.fft
from batchgenerators.transforms.abstract_transforms import AbstractTransform

from disyre_v2.training.seeded import SeededRandomness

# (row, column) offsets of the 4-neighbours q of p.
NEIGHBOURS = ((-1, 0), (1, 0), (0, -1), (0, 1))


def _check_region(shape: tuple[int, ...], rows: slice, cols: slice) -> None:
    height, width = shape[-2:]
    if not (1 <= rows.start < rows.stop <= height - 1 and 1 <= cols.start < cols.stop <= width - 1):
        raise ValueError(f"the Poisson region rows {rows.start}:{rows.stop}, columns {cols.start}:{cols.stop} must be "
                         f"non-empty and leave the outermost ring of the {height} x {width} slice as its boundary")


def _neighbour(image: np.ndarray, rows: slice, cols: slice, offset: tuple[int, int]) -> np.ndarray:
    """``image`` (..., H, W) at q = p + offset for every p of the region."""
    dr, dc = offset
    return image[..., rows.start + dr:rows.stop + dr, cols.start + dc:cols.stop + dc]


def guidance_divergence(x: np.ndarray, g: np.ndarray, alpha: float, rows: slice, cols: slice) -> np.ndarray:
    """Σ_{q ∈ N_p} v_pq over the region (C, h, w): the discrete divergence of PII's guidance field
    (eq. "guidance" of the module docstring), channel by channel."""
    _check_region(x.shape, rows, cols)
    x, g = np.asarray(x, np.float64), np.asarray(g, np.float64)
    x_p, g_p = x[..., rows, cols], g[..., rows, cols]
    total = np.zeros_like(x_p)
    for offset in NEIGHBOURS:
        own = (1.0 - alpha) * (x_p - _neighbour(x, rows, cols, offset))
        foreign = alpha * (g_p - _neighbour(g, rows, cols, offset))
        total += np.where(np.abs(own) > np.abs(foreign), own, foreign)
    return total


@functools.lru_cache(maxsize=256)
def dirichlet_laplacian_eigenvalues(height: int, width: int) -> np.ndarray:
    """(h, w) eigenvalues 4 − 2cos(πk/(h+1)) − 2cos(πl/(w+1)) of the 5-point Laplacian with zero
    Dirichlet boundary on an h × w rectangle; its eigenvectors are the type-I DST basis. Cached (a
    read-only array: the region sizes repeat)."""
    k = np.arange(1, height + 1)[:, None]
    l = np.arange(1, width + 1)[None, :]
    values = 4.0 - 2.0 * np.cos(np.pi * k / (height + 1)) - 2.0 * np.cos(np.pi * l / (width + 1))
    values.flags.writeable = False
    return values


def solve_region(x: np.ndarray, g: np.ndarray, alpha: float, rows: slice, cols: slice) -> np.ndarray:
    """f on the region (C, h, w), float64: the solution of eq. "Poisson" with PII's guidance and the
    image ``x`` (C, H, W) as the Dirichlet boundary."""
    _check_region(np.shape(x), rows, cols)
    # The region and its ring of boundary neighbours are all the equation reads.
    window = (..., slice(rows.start - 1, rows.stop + 1), slice(cols.start - 1, cols.stop + 1))
    x, g = np.asarray(x[window], np.float64), np.asarray(g[window], np.float64)
    inner_rows, inner_cols = slice(1, x.shape[-2] - 1), slice(1, x.shape[-1] - 1)
    rhs = guidance_divergence(x, g, alpha, inner_rows, inner_cols)
    # Dirichlet boundary: the neighbours outside Ω keep the image's values (Σ_{q ∈ N_p \ Ω} x_q).
    rhs[..., 0, :] += x[..., 0, inner_cols]
    rhs[..., -1, :] += x[..., -1, inner_cols]
    rhs[..., :, 0] += x[..., inner_rows, 0]
    rhs[..., :, -1] += x[..., inner_rows, -1]
    # The orthonormal DST-I is its own inverse: f = S (S b / λ).
    spectrum = scipy.fft.dstn(rhs, type=1, axes=(-2, -1), norm="ortho", overwrite_x=True)
    spectrum /= dirichlet_laplacian_eigenvalues(*rhs.shape[-2:])
    return scipy.fft.idstn(spectrum, type=1, axes=(-2, -1), norm="ortho", overwrite_x=True)


def poisson_interpolate(x: np.ndarray, g: np.ndarray, alpha: float, rows: slice, cols: slice) -> np.ndarray:
    """The PII blend of ``g`` into ``x`` (C, H, W) on the region rows × cols, float64, not clipped:
    x outside the region; inside, the solution of eq. "Poisson" with PII's guidance."""
    out = np.array(x, np.float64)
    out[..., rows, cols] = solve_region(out, g, alpha, rows, cols)
    return out


def sample_region(brain: np.ndarray, rng: np.random.Generator, core_fraction: float = 0.8,
                  half_width_fraction: tuple[float, float] = (0.05, 0.2)) -> tuple[slice, slice] | None:
    """Ω for one (H, W) brain mask: a centre drawn uniformly among the brain pixels of the central
    ``core_fraction`` of the slice, a half-width w uniform in [round(0.05·W), round(0.2·W)), the square
    [c − w, c + w)² clipped to the slice without its outermost ring. None if the core holds no brain."""
    height, width = brain.shape
    top, left = int((1 - core_fraction) * height / 2), int((1 - core_fraction) * width / 2)
    bottom = max(int((1 - core_fraction) * height / 2 + core_fraction * height), top + 1)
    right = max(int((1 - core_fraction) * width / 2 + core_fraction * width), left + 1)
    candidates = np.flatnonzero(brain[top:bottom, left:right])
    if candidates.size == 0:
        return None
    flat = int(candidates[rng.integers(candidates.size)])
    row, col = top + flat // (right - left), left + flat % (right - left)
    low = max(int(round(half_width_fraction[0] * width)), 1)
    high = max(int(round(half_width_fraction[1] * width)), low + 1)
    half = int(rng.integers(low, high))
    rows = slice(max(row - half, 1), min(row + half, height - 1))
    cols = slice(max(col - half, 1), min(col + half, width - 1))
    if rows.start >= rows.stop or cols.start >= cols.stop:
        return None  # a slice too small to leave a boundary ring
    return rows, cols


class PoissonInterpolationTransform(SeededRandomness, AbstractTransform):
    """Batch transform: ``data`` (B, C, H, W) in [0, 1] with ``mask`` (B, 1, H, W) → ``data`` = the PII
    blend, ``target`` = the clean slices, ``t`` = 0, ``label`` (B, 1, H, W) float32 = α on the changed
    brain pixels of Ω, ``anomaly_mask`` = Ω on the brain, ``alpha_text`` (B,) = α (0: left clean).

    The foreign slice of sample i is another sample of the batch, drawn uniformly (a batch of one
    slice stays clean). Owns a seeded Generator, reseeded per batch by the loader, so the same seed
    gives the same batches."""

    def __init__(self, alpha_range: tuple[float, float] = (0.05, 0.95), core_fraction: float = 0.8,
                 half_width_fraction: tuple[float, float] = (0.05, 0.2), change_tolerance: float = 1e-6,
                 seed: int | np.random.SeedSequence | None = None):
        if not 0.0 <= alpha_range[0] <= alpha_range[1] <= 1.0:
            raise ValueError(f"PII needs 0 <= alpha_min <= alpha_max <= 1, got {alpha_range}")
        if not 0.0 < core_fraction <= 1.0 or not 0.0 <= half_width_fraction[0] <= half_width_fraction[1]:
            raise ValueError(f"PII needs 0 < core_fraction <= 1 and ordered half-width fractions, got "
                             f"{core_fraction}, {half_width_fraction}")
        self.alpha_range = (float(alpha_range[0]), float(alpha_range[1]))
        self.core_fraction = float(core_fraction)
        self.half_width_fraction = (float(half_width_fraction[0]), float(half_width_fraction[1]))
        self.change_tolerance = float(change_tolerance)
        self.reseed(seed)

    def __call__(self, **data_dict):
        data = np.asarray(data_dict["data"], np.float32)
        brain = np.asarray(data_dict["mask"]) > 0
        if data.ndim != 4 or brain.shape != (data.shape[0], 1) + data.shape[2:]:
            raise ValueError(f"{type(self).__name__}: 'data' must be (B, C, H, W) and 'mask' (B, 1, H, W), got "
                             f"{data.shape} and {brain.shape}")
        batch = len(data)
        corrupted = data.copy()
        label = np.zeros((batch, 1) + data.shape[2:], np.float32)
        region_mask = np.zeros_like(label)
        alphas = np.zeros(batch, np.float32)
        for i in range(batch if batch > 1 else 0):
            foreign = (i + int(self.rng.integers(1, batch))) % batch  # any other slice of the batch
            region = sample_region(brain[i, 0], self.rng, self.core_fraction, self.half_width_fraction)
            alpha = float(self.rng.uniform(*self.alpha_range))
            if region is None:
                continue  # no brain in the core: the slice stays clean, label 0
            rows, cols = region
            # Only Ω changes: solve, clip and compare there.
            x = data[i]
            blend = solve_region(x, data[foreign], alpha, rows, cols)
            # The authors clip the blend to the image's range (here per channel); then kept on the brain.
            blend = np.clip(blend, x.min(axis=(1, 2), keepdims=True), x.max(axis=(1, 2), keepdims=True))
            inside = brain[i, 0, rows, cols]
            blend = (blend * inside).astype(np.float32)
            changed = (np.abs(blend - x[:, rows, cols]) > self.change_tolerance).any(axis=0)
            corrupted[i, :, rows, cols] = blend
            label[i, 0, rows, cols] = alpha * (inside & changed)
            region_mask[i, 0, rows, cols] = inside
            alphas[i] = alpha
        data_dict["target"] = data
        data_dict["data"] = corrupted
        data_dict["t"] = np.zeros(batch, np.int64)
        data_dict["label"] = label
        data_dict["anomaly_mask"] = region_mask
        data_dict["alpha_text"] = alphas
        return data_dict

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(alpha_range={self.alpha_range}, core_fraction={self.core_fraction}, "
                f"half_width_fraction={self.half_width_fraction})")
