"""Rotation, scaling and elastic deformation (method_numbers.md ("Anomaly synthesis")) in one batched interpolation.

batchgenerators' ``SpatialTransform`` builds a coordinate grid for every sample and interpolates
each channel with a cubic B-spline (``scipy.ndimage.map_coordinates``), also for the ~73 % of
samples that draw no spatial transform at all; on 2-channel 128² slices that was 43 % of the whole
loader's CPU time. Here only the samples that draw a transform are touched, and they are
interpolated together by ``torch.nn.functional.grid_sample`` (bicubic for the images, nearest for
the brain mask), which is several times cheaper per sample than the B-spline.

The draws follow batchgenerators' order and conventions (per sample: elastic with p_el, rotation
with p_rot, scaling with p_scale; coordinates centred on the patch, zoom factor s multiplies the
sampling coordinates so s > 1 shrinks the content; out-of-patch samples are 0). The elastic
displacement field, white noise in [-1, 1] smoothed by a Gaussian of σ and scaled by α, is drawn on
a grid 4× coarser with σ/4 and upsampled linearly: the same smooth field statistically (its
amplitude corrected for the coarser grid) for a sixteenth of the filtering.
"""
from __future__ import annotations

import numpy as np
import torch
from batchgenerators.transforms.abstract_transforms import AbstractTransform
from scipy import ndimage

from disyre_v2.training.seeded import SeededRandomness

# The displacement field is smoothed on a grid this many times coarser (σ ≥ 9 px, so σ/4 ≥ 2.25
# coarse pixels: the coarse field is still resolved).
ELASTIC_GRID_FACTOR = 4


def elastic_displacement(shape: tuple[int, int], alpha: float, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """(2, H, W) displacement in pixels: Gaussian-smoothed uniform noise × alpha (batchgenerators'
    ``elastic_deform_coordinates``), computed on a coarser grid and upsampled."""
    factor = ELASTIC_GRID_FACTOR
    coarse = tuple(max(int(np.ceil(size / factor)), 2) for size in shape)
    noise = rng.uniform(-1.0, 1.0, size=(2,) + coarse)
    # Smoothed white noise has a standard deviation ∝ 1/σ in 2D: the coarse grid's σ/factor makes
    # it factor× larger, so divide by factor to match the full-resolution field.
    smooth = np.stack([ndimage.gaussian_filter(n, sigma / factor, mode="constant", cval=0.0) for n in noise])
    smooth *= alpha / factor
    field = torch.nn.functional.interpolate(torch.from_numpy(smooth)[None].float(), size=shape, mode="bilinear",
                                            align_corners=True)[0]
    return field.numpy()


class BatchedSpatialTransform(SeededRandomness, AbstractTransform):
    """Random rotation, scaling and elastic deformation of ``data`` and ``seg`` (B, C, H, W).

    Samples that draw none are returned untouched. Randomness comes from the generator set by
    ``reseed`` (BatchSeededCompose gives each batch its own child seed).
    """

    def __init__(self, rotation_probability: float, rotation_deg: float, scale_probability: float,
                 scale_range: tuple[float, float], elastic_probability: float,
                 elastic_alpha: tuple[float, float] = (0.0, 200.0), elastic_sigma: tuple[float, float] = (9.0, 13.0)):
        self.rotation_probability = float(rotation_probability)
        self.max_angle = float(np.deg2rad(rotation_deg))
        self.scale_probability = float(scale_probability)
        self.scale_range = (float(scale_range[0]), float(scale_range[1]))
        self.elastic_probability = float(elastic_probability)
        self.elastic_alpha = elastic_alpha
        self.elastic_sigma = elastic_sigma
        self.reseed(0)

    def _scale(self) -> float:
        # batchgenerators: half of the draws shrink (low–1), half enlarge (1–high).
        low, high = self.scale_range
        if self.rng.random() < 0.5 and low < 1:
            return float(self.rng.uniform(low, 1.0))
        return float(self.rng.uniform(max(low, 1.0), high))

    def draw(self, batch_size: int, shape: tuple[int, int]) -> dict[int, np.ndarray]:
        """Sampling coordinates (2, H, W), centred on the patch and in pixels, of every sample that
        draws at least one transform (rows first, then columns)."""
        centred = np.stack(np.meshgrid(*[np.arange(size, dtype=np.float64) - (size - 1) / 2.0 for size in shape],
                                       indexing="ij"))
        coordinates: dict[int, np.ndarray] = {}
        for index in range(batch_size):
            coords, changed = centred, False
            if self.elastic_probability > 0 and self.rng.random() < self.elastic_probability:
                alpha = self.rng.uniform(*self.elastic_alpha)
                sigma = self.rng.uniform(*self.elastic_sigma)
                coords = coords + elastic_displacement(shape, alpha, sigma, self.rng)
                changed = True
            if self.rotation_probability > 0 and self.rng.random() < self.rotation_probability:
                angle = self.rng.uniform(-self.max_angle, self.max_angle)
                cos, sin = np.cos(angle), np.sin(angle)
                coords = np.stack([cos * coords[0] - sin * coords[1], sin * coords[0] + cos * coords[1]])
                changed = True
            if self.scale_probability > 0 and self.rng.random() < self.scale_probability:
                coords = coords * self._scale()
                changed = True
            if changed:
                coordinates[index] = coords
        return coordinates

    def __call__(self, **data_dict):
        data, seg = data_dict["data"], data_dict.get("seg")
        shape = tuple(data.shape[2:])
        coordinates = self.draw(len(data), shape)
        if not coordinates:
            return data_dict
        indices = sorted(coordinates)
        # grid_sample's grid: (x, y) = (column, row), normalised so that -1 and 1 are the centres of
        # the first and last pixels (align_corners=True).
        half = torch.tensor([(shape[1] - 1) / 2.0, (shape[0] - 1) / 2.0], dtype=torch.float64)
        grid = torch.stack([torch.from_numpy(coordinates[i][::-1].copy()).permute(1, 2, 0) for i in indices])
        grid = (grid / half).float()
        selected = torch.from_numpy(np.ascontiguousarray(data[indices], dtype=np.float32))
        warped = torch.nn.functional.grid_sample(selected, grid, mode="bicubic", padding_mode="zeros",
                                                 align_corners=True)
        data = data.copy()
        data[indices] = warped.numpy()
        data_dict["data"] = data
        if seg is not None:
            selected_seg = torch.from_numpy(np.ascontiguousarray(seg[indices], dtype=np.float32))
            warped_seg = torch.nn.functional.grid_sample(selected_seg, grid, mode="nearest", padding_mode="zeros",
                                                         align_corners=True)
            seg = seg.copy()
            seg[indices] = warped_seg.numpy().astype(seg.dtype, copy=False)
            data_dict["seg"] = seg
        return data_dict
