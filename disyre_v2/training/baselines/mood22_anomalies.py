"""The plausible synthetic anomalies of the MOOD 2022 winning entry (Naval Marimont and Tarroni, 2023), in 2D.

The entry trains a segmentation network on foreign-patch anomalies (FPI, Tan et al.) made "harder"
in two ways: complex random shapes besides cuboids and spheres, and smoothed anomaly edges so that
the network cannot rely on the step between image and anomaly. Per sample, with probability 0.9:

- a canvas of 0.8 × the patch side (the entry: 128³ in a 160³ patch) at a uniform position in the
  patch, not restricted to the foreground (the entry's ``no_mask_in_background=False``);
- one shape on the canvas, the three generators with equal weights: a rectangle (sides uniform
  integers from P/16 (the entry's 10 voxels of 160) to the canvas, at a uniform position inside
  it, rotated about the canvas centre by U(−3, 3) rad with probability 0.5); a disc (diameter in the
  same range, at a uniform position); a random shape (a slice of our seeded library of lobulated 3D
  blobs, largest extent in the same range, centred, with probability 0.5 rotated by U(−2, 2) rad
  and scaled by 1 + U(−0.3, 0.3): the entry's random affine of its shape masks);
- the foreign patch: a canvas-sized crop at a uniform position of another training slice (a FIFO
  cache of 50 crops), augmented as the entry does: + U(−0.2, 0.2) with probability 0.2, Gaussian
  noise N(0, σ²), σ ~ U(0, 0.2), with probability 0.2, clipped to [0, 1], rotated by U(−1, 1) rad
  with probability 0.2;
- the soft mask L = G_k ∗ (α·m), α ~ U(0.3, 1), smoothed with a Gaussian kernel of side k drawn from
  {1, 1, 1, 1, 3, 3, 5, 7} (k = 1: no smoothing), weights ∝ exp(−((i − c)/(2σ))²), σ = 1;
- x' = (1 − L)·x + L·x_fp (linear interpolation, FPI's), and the per-pixel label is L itself: the
  entry's soft label (``label_binary=False``).

The other 10 % of the samples stay clean with a zero label. Every draw comes from the transform's
own seeded Generator, reseeded per batch by the loader, so a batch is the same whichever worker
makes it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from batchgenerators.transforms.abstract_transforms import AbstractTransform
from scipy import ndimage

from disyre_v2.training.anomalies.blob_library import LazyBlobLibrary
from disyre_v2.training.anomalies.placement import canvas_window, choose_centre
from disyre_v2.training.anomalies.shapes import draw_disc, draw_irregular, rotate_shape
from disyre_v2.training.anomalies.texture import ForeignPatchCache
from disyre_v2.training.anomalies.transform import ForeignPatchCacheState
from disyre_v2.training.seeded import SeededRandomness

SHAPE_KINDS = ("rectangle", "disc", "irregular")  # the entry's RandomSquare, RandomSphere, RandomMask


@dataclass(frozen=True)
class Mood22Parameters:
    """The entry's numbers (snavalm/mood22, experiment configuration and FPIAnomalyd defaults)."""

    anomaly_probability: float = 0.9  # p_anomaly
    alpha_range: tuple[float, float] = (0.3, 1.0)  # alpha_range
    canvas_fraction: float = 0.8  # fp_size 128 of patch_size 160
    min_size_fraction: float = 1.0 / 16.0  # min_anom_size 10 of 160
    shape_weights: tuple[float, float, float] = (1 / 3, 1 / 3, 1 / 3)  # mask_generators_prob_dict: 1, 1, 1
    rectangle_rotation_probability: float = 0.5
    rectangle_rotation_rad: float = 3.0
    irregular_affine_probability: float = 0.5
    irregular_rotation_rad: float = 2.0
    irregular_scale_range: float = 0.3
    smoothing_kernels: tuple[int, ...] = (1, 1, 1, 1, 3, 3, 5, 7)
    smoothing_sigma: float = 1.0
    fp_shift_probability: float = 0.2
    fp_shift: float = 0.2
    fp_noise_probability: float = 0.2
    fp_noise_std: float = 0.2
    fp_rotation_probability: float = 0.2
    fp_rotation_rad: float = 1.0
    cache_size: int = 50  # size_cache
    library_size: int = 64  # our blob library (the entry's shape masks are not published)

    def __post_init__(self):
        for name in ("anomaly_probability", "rectangle_rotation_probability", "irregular_affine_probability",
                     "fp_shift_probability", "fp_noise_probability", "fp_rotation_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"Mood22Parameters.{name} must be a probability, got {getattr(self, name)}")
        low, high = self.alpha_range
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"Mood22Parameters.alpha_range must be 0 <= low <= high <= 1, got {self.alpha_range}")
        if not 0.0 < self.canvas_fraction <= 1.0 or not 0.0 < self.min_size_fraction <= self.canvas_fraction:
            raise ValueError("Mood22Parameters: need 0 < min_size_fraction <= canvas_fraction <= 1")
        if len(self.shape_weights) != len(SHAPE_KINDS) or min(self.shape_weights) < 0 or sum(self.shape_weights) <= 0:
            raise ValueError(f"Mood22Parameters.shape_weights: one non-negative weight per kind {SHAPE_KINDS}, "
                             f"not all 0, got {self.shape_weights}")
        if any(k < 1 or k % 2 == 0 for k in self.smoothing_kernels) or not self.smoothing_kernels:
            raise ValueError(f"Mood22Parameters.smoothing_kernels must be odd sizes >= 1, got {self.smoothing_kernels}")

    def sizes(self, height: int, width: int) -> tuple[int, int]:
        """(canvas side C, smallest shape size) for an H × W patch: 0.8 and 1/16 of the shorter side."""
        side = min(height, width)
        canvas = max(1, min(side, int(round(self.canvas_fraction * side))))
        return canvas, max(1, min(canvas, int(round(self.min_size_fraction * side))))


# -- shapes on the C × C canvas ------------------------------------------------------------------
def place_rectangle(canvas_size: int, height: int, width: int, top: int, left: int) -> np.ndarray:
    """A filled height × width rectangle with its top-left corner at (top, left) (float32 0/1)."""
    if not (0 <= top <= canvas_size - height and 0 <= left <= canvas_size - width):
        raise ValueError(f"a {height}×{width} rectangle at ({top}, {left}) leaves the {canvas_size}-px canvas")
    canvas = np.zeros((canvas_size, canvas_size), np.float32)
    canvas[top:top + height, left:left + width] = 1.0
    return canvas


def place_disc(canvas_size: int, diameter: int, top: int, left: int) -> np.ndarray:
    """Our disc of ``diameter`` px (shapes.draw_disc) with its bounding box's corner at (top, left)."""
    if not (0 <= top <= canvas_size - diameter and 0 <= left <= canvas_size - diameter):
        raise ValueError(f"a disc of {diameter} px at ({top}, {left}) leaves the {canvas_size}-px canvas")
    centred = draw_disc(canvas_size, diameter)
    start = (canvas_size - diameter) // 2  # where draw_disc puts it; it fits, so the roll wraps zeros only
    return np.roll(centred, (top - start, left - start), axis=(0, 1))


def smoothing_kernel(size: int, sigma: float = 1.0) -> np.ndarray:
    """The entry's 1D smoothing weights: ∝ exp(−((i − (size − 1)/2)/(2σ))²), summing to 1."""
    offsets = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    weights = np.exp(-((offsets / (2.0 * sigma)) ** 2))
    return weights / weights.sum()


def smooth_mask(mask: np.ndarray, size: int, sigma: float = 1.0) -> np.ndarray:
    """``mask`` (H, W) convolved with the separable size × size kernel, zeros beyond the patch (the
    entry's zero-padded convolution); size 1 returns it unchanged."""
    if size == 1:
        return mask.astype(np.float32, copy=True)
    kernel = smoothing_kernel(size, sigma)
    out = ndimage.convolve1d(mask.astype(np.float64), kernel, axis=0, mode="constant", cval=0.0)
    out = ndimage.convolve1d(out, kernel, axis=1, mode="constant", cval=0.0)
    return out.astype(np.float32)


# -- the foreign patch's augmentation --------------------------------------------------------------
def augment_foreign_patch(patch: np.ndarray, rng: np.random.Generator, params: Mood22Parameters) -> np.ndarray:
    """(C, S, S) crop → the entry's fp augmentations: intensity shift, Gaussian noise, clip to [0, 1],
    rotation (bilinear, border values repeated). The draws are taken in a fixed order, applied or not."""
    out = patch.astype(np.float32, copy=True)
    shift, offset = rng.random() < params.fp_shift_probability, rng.uniform(-params.fp_shift, params.fp_shift)
    noisy, std = rng.random() < params.fp_noise_probability, rng.uniform(0.0, params.fp_noise_std)
    rotate, angle = rng.random() < params.fp_rotation_probability, rng.uniform(-params.fp_rotation_rad,
                                                                               params.fp_rotation_rad)
    if shift:
        out += np.float32(offset)
    if noisy:
        out += rng.normal(0.0, std, size=out.shape).astype(np.float32)
    out = np.clip(out, 0.0, 1.0)
    if rotate:
        out = ndimage.rotate(out, np.degrees(angle), axes=(-2, -1), reshape=False, order=1, mode="nearest")
    return out.astype(np.float32, copy=False)


def interpolate(x: np.ndarray, foreign: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """x' = (1 − L)·x + L·x_fp per channel (FPI's linear interpolation); ``weight`` L is (H, W)."""
    return ((1.0 - weight) * x + weight * foreign).astype(np.float32)


class Mood22Synthesizer(SeededRandomness, LazyBlobLibrary):
    """Corrupts a batch (B, C, H, W) with the entry's anomalies; owns its Generator and fp cache."""

    def __init__(self, params: Mood22Parameters | None = None, seed=None, library_seed: int | None = None):
        self.params = params or Mood22Parameters()
        self.reseed(seed)
        self.cache = ForeignPatchCache(self.params.cache_size)
        self.library_seed = library_seed
        self._library = None

    def library_size(self) -> int:
        return self.params.library_size

    def draw_shape(self, canvas: int, min_size: int, kind: str | None = None) -> tuple[np.ndarray, str]:
        """One binary shape on the C × C canvas, the kind drawn with ``shape_weights`` unless given."""
        p, rng = self.params, self.rng
        if kind is None:
            weights = np.asarray(p.shape_weights, np.float64)
            kind = SHAPE_KINDS[int(rng.choice(len(SHAPE_KINDS), p=weights / weights.sum()))]
        if kind == "rectangle":
            height, width = (int(v) for v in rng.integers(min_size, canvas + 1, size=2))
            top, left = int(rng.integers(canvas - height + 1)), int(rng.integers(canvas - width + 1))
            mask = place_rectangle(canvas, height, width, top, left)
            if rng.random() < p.rectangle_rotation_probability:  # about the canvas centre, as the entry
                mask = rotate_shape(mask, np.degrees(rng.uniform(-p.rectangle_rotation_rad, p.rectangle_rotation_rad)))
            return mask, kind
        if kind == "disc":
            diameter = int(rng.integers(min_size, canvas + 1))
            top, left = (int(v) for v in rng.integers(canvas - diameter + 1, size=2))
            return place_disc(canvas, diameter, top, left), kind
        if kind == "irregular":
            section, extent = self.library.sample_slice(rng)
            scale = rng.uniform(min_size, canvas) / extent
            angle = 0.0
            if rng.random() < p.irregular_affine_probability:
                angle = np.degrees(rng.uniform(-p.irregular_rotation_rad, p.irregular_rotation_rad))
                scale *= 1.0 + rng.uniform(-p.irregular_scale_range, p.irregular_scale_range)
            return draw_irregular(canvas, section, scale, angle), kind
        raise ValueError(f"unknown MOOD22 shape kind {kind!r}; expected one of {', '.join(SHAPE_KINDS)}")

    def __call__(self, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(corrupted data, label (B, 1, H, W) = the soft interpolation weight L)."""
        data = np.asarray(data, np.float32)
        if data.ndim != 4:
            raise ValueError(f"{type(self).__name__}: 'data' must be (B, C, H, W) 2D patches, got shape {data.shape}")
        batch, _, height, width = data.shape
        canvas, min_size = self.params.sizes(height, width)
        anywhere = np.ones((height, width), bool)  # placement ignores the brain (no_mask_in_background=False)
        crops = np.empty(data.shape[:2] + (canvas, canvas), np.float32)
        for i in range(batch):
            rows, cols = canvas_window(choose_centre(anywhere, canvas, self.rng), canvas)
            crops[i] = data[i, :, rows, cols]
        foreign = self.cache.choose(crops, self.rng)
        corrupted, label = data.copy(), np.zeros((batch, 1, height, width), np.float32)
        for i in range(batch):
            if self.rng.random() >= self.params.anomaly_probability:
                continue  # a clean sample, label 0
            corrupted[i], label[i, 0] = self.corrupt_sample(data[i], foreign[i], canvas, min_size, anywhere)
        return corrupted, label

    def corrupt_sample(self, x: np.ndarray, foreign: np.ndarray, canvas: int, min_size: int,
                       anywhere: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p, rng = self.params, self.rng
        rows, cols = canvas_window(choose_centre(anywhere, canvas, rng), canvas)
        alpha = rng.uniform(*p.alpha_range)
        shape, _ = self.draw_shape(canvas, min_size)
        kernel = int(p.smoothing_kernels[int(rng.integers(len(p.smoothing_kernels)))])
        fp = augment_foreign_patch(foreign, rng, p)
        weight = np.zeros(x.shape[-2:], np.float32)
        weight[rows, cols] = alpha * shape
        weight = smooth_mask(weight, kernel, p.smoothing_sigma)
        placed = np.zeros_like(x)
        placed[:, rows, cols] = fp  # zero beyond the canvas, as the entry's fp volume
        return interpolate(x, placed, weight), weight


class Mood22AnomalyTransform(ForeignPatchCacheState, AbstractTransform):
    """Batch transform: ``data`` → x', ``target`` = clean x, ``t`` = 0 (no level input), ``label``
    (B, 1, H, W) float32 = L, ``anomaly_mask`` = L as well (the figures' key). Picklable; the
    loader reseeds it per batch (``reseed``); ``state_dict`` holds the fp cache for an exact resume."""

    def __init__(self, params: Mood22Parameters | None = None, seed=None, library_seed: int | None = None):
        self.synthesizer = Mood22Synthesizer(params, seed=seed, library_seed=library_seed)

    def reseed(self, seed) -> None:
        self.synthesizer.reseed(seed)


    def __call__(self, **data_dict):
        if "data" not in data_dict:
            raise KeyError(f"{type(self).__name__}: the batch has no 'data' entry (keys: {sorted(data_dict)})")
        clean = np.asarray(data_dict["data"], np.float32)
        corrupted, label = self.synthesizer(clean)
        data_dict["target"] = clean
        data_dict["data"] = corrupted
        data_dict["t"] = np.zeros(len(clean), np.int64)
        data_dict["label"] = label
        data_dict["anomaly_mask"] = label
        return data_dict

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.synthesizer.params})"
