"""Disentangled Anomaly Generation and its variants on a batch of 2D patches (method_numbers.md ("Anomaly synthesis")).

Per sample: a canvas centre among brain pixels, one shape mask m (soft, zero on background) shared by
all channels, texture with a foreign patch (eq. 1) at one location for all channels, then per
channel an intensity bias on one tissue cluster (eq. 2) with its own cluster, sign and α_bias.
The conditioning level is t = B⁻¹(max(α_text, max_c α_bias_eff,c)); an empty mask gives α = 0,
t = 0 and an unchanged input. Every draw comes from the synthesiser's own seeded Generator.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from disyre_v2.training.anomalies.config import AnomalySynthesisConfig
from disyre_v2.training.anomalies.intensity_bias import (
    apply_bias, choose_cluster, effective_bias, quantise, tissue_mask)
from disyre_v2.training.anomalies.placement import canvas_window, choose_centre
from disyre_v2.training.anomalies.shapes import ShapeSampler
from disyre_v2.training.anomalies.texture import ForeignPatchCache, blend_texture, rescale_to_support
from disyre_v2.training.schedule import SeverityScheduler
from disyre_v2.training.seeded import SeededRandomness

# scipy.ndimage.gaussian_filter's default truncation (kernel radius = truncate·σ, rounded).
_GAUSSIAN_TRUNCATE = 4.0


@dataclass
class SynthesisResult:
    corrupted: np.ndarray  # (B, C, P, P) float32, x_sc
    target: np.ndarray  # (B, C, P, P) float32, clean x0
    level: np.ndarray  # (B,) int64, t
    anomaly_mask: np.ndarray  # (B, 1, P, P) float32, soft m
    alpha_text: np.ndarray  # (B,) float32
    alpha_bias: np.ndarray  # (B, C) float32, effective


class AnomalySynthesizer(SeededRandomness):
    """Corrupts batches following ``config.mode``; owns its RNG and its foreign-patch cache."""

    def __init__(self, config: AnomalySynthesisConfig, scheduler: SeverityScheduler | None = None,
                 seed: int | None = None, library_seed: int | None = None):
        self.config = config
        self.scheduler = scheduler if scheduler is not None else SeverityScheduler()
        self.reseed(seed)
        self.shapes = ShapeSampler(config, library_seed)
        self.cache = ForeignPatchCache(config.foreign_patch_cache_size)
        self._centroids = [np.asarray(c, dtype=np.float64) for c in config.tissue_centroids]

    # -- checks ---------------------------------------------------------------------------------
    def _check(self, data: np.ndarray, brain: np.ndarray) -> None:
        name = type(self).__name__
        if data.ndim != 4:
            raise ValueError(f"{name}: 'data' must be (B, C, H, W) 2D patches, got shape {data.shape}")
        if brain.shape != (data.shape[0], 1) + data.shape[2:]:
            raise ValueError(f"{name}: 'mask' must be (B, 1, H, W) = {(data.shape[0], 1) + data.shape[2:]}, "
                             f"got {brain.shape}")
        if data.size and (data.min() < 0 or data.max() > 1):
            raise ValueError(f"{name}: 'data' must be normalised to [0, 1] (preprocessing does this), got "
                             f"values in [{data.min():.4g}, {data.max():.4g}]")
        if self.config.spec.tissue and len(self._centroids) != data.shape[1]:
            raise ValueError(
                f"{name}: the data have {data.shape[1]} channel(s) but plans.json tissue_centroids has "
                f"{len(self._centroids)}; re-run planning for this dataset's channels")

    # -- one batch ------------------------------------------------------------------------------
    def __call__(self, data: np.ndarray, brain: np.ndarray) -> SynthesisResult:
        data = np.asarray(data, dtype=np.float32)
        brain = np.asarray(brain) > 0
        self._check(data, brain)
        batch, channels = data.shape[:2]
        corrupted = data.copy()
        anomaly_mask = np.zeros((batch, 1) + data.shape[2:], dtype=np.float32)
        alpha_text = np.zeros(batch, dtype=np.float32)
        alpha_bias = np.zeros((batch, channels), dtype=np.float32)
        spec = self.config.spec
        if spec.texture or spec.bias:
            foreign = self._foreign_patches(data, brain) if spec.texture else None
            # Too little brain for the canvas (top and bottom slices): the sample stays clean, t = 0.
            enough = brain.sum(axis=(1, 2, 3)) >= self.config.min_brain_fraction * self.config.canvas_size ** 2
            for i in np.flatnonzero(enough):
                self._corrupt_sample(i, data, brain, foreign, corrupted, anomaly_mask, alpha_text, alpha_bias)
        # t = B⁻¹(max(α_text, α_bias_eff)); absent parts are 0, so one formula serves every mode.
        severity = np.maximum(alpha_text, alpha_bias.max(axis=1) if channels else 0.0)
        level = np.asarray(self.scheduler.level_of(severity), dtype=np.int64).reshape(batch)
        level[severity == 0] = 0  # empty mask (or mode "none"): healthy level
        if self.config.anomaly_probability < 1.0:
            self._keep_some_clean(data, corrupted, anomaly_mask)
        return SynthesisResult(corrupted, data, level, anomaly_mask, alpha_text, alpha_bias)

    def _keep_some_clean(self, data: np.ndarray, corrupted: np.ndarray, anomaly_mask: np.ndarray) -> None:
        """Undo the anomaly of a share 1 − anomaly_probability of the samples, keeping their level t.

        At inference every assumed severity t is applied to every window, and most windows are
        healthy; samples that stay clean at the t they drew teach the network that t bounds the
        severity of an anomaly that may not be there (t then says nothing about its presence).
        """
        clean = self.rng.random(len(data)) >= self.config.anomaly_probability
        corrupted[clean] = data[clean]
        anomaly_mask[clean] = 0.0

    def _foreign_patches(self, data: np.ndarray, brain: np.ndarray) -> np.ndarray:
        """One C×C crop per sample around its brain, exchanged through the cache (eq. 1's x_fp)."""
        size = self.config.canvas_size
        crops = np.empty(data.shape[:2] + (size, size), dtype=np.float32)
        for i in range(len(data)):
            rows, cols = canvas_window(choose_centre(brain[i, 0], size, self.rng), size)
            crops[i] = data[i, :, rows, cols]
        return self.cache.choose(crops, self.rng)

    def _corrupt_sample(self, i, data, brain, foreign, corrupted, anomaly_mask, alpha_text, alpha_bias) -> None:
        cfg, spec, rng = self.config, self.config.spec, self.rng
        rows, cols = canvas_window(choose_centre(brain[i, 0], cfg.canvas_size, rng), cfg.canvas_size)
        m = self.shapes.sample(rng)
        if cfg.restrict_to_brain:
            m = m * brain[i, 0, rows, cols]  # zero on background
        support = m > 0
        if not support.any():
            return  # empty mask: α = 0, t = 0, x_sc = x0
        x = data[i, :, rows, cols]
        x_text = x
        if spec.texture:
            a_text = rng.uniform(*cfg.alpha_text_range)
            fp = rescale_to_support(foreign[i], x, support) if spec.rescale else foreign[i]
            x_text = blend_texture(x, fp, m, a_text)  # eq. (1)
            alpha_text[i] = a_text
        x_sc = x_text.copy()
        if spec.bias:
            for c in range(x.shape[0]):
                sign = 1.0 if rng.random() < 0.5 else -1.0
                a_bias = rng.uniform(*cfg.alpha_bias_range)
                tissue = self._tissue(i, c, data, x_text[c], rows, cols, support) if spec.tissue else 1.0
                x_sc[c] = apply_bias(x_text[c], m, tissue, sign, a_bias)  # eq. (2)
                alpha_bias[i, c] = effective_bias(x_sc[c], x_text[c])
        corrupted[i, :, rows, cols] = x_sc
        anomaly_mask[i, 0, rows, cols] = m

    def _tissue(self, i, c, data, x_text_c, rows, cols, support) -> np.ndarray:
        """m_tissue on the canvas, computed on a margin wide enough to equal the whole-slice result."""
        sigma = self.config.tissue_sigma
        margin = int(_GAUSSIAN_TRUNCATE * sigma + 0.5) if sigma > 0 else 0
        height, width = data.shape[-2:]
        top, left = max(rows.start - margin, 0), max(cols.start - margin, 0)
        bottom, right = min(rows.stop + margin, height), min(cols.stop + margin, width)
        region = data[i, c, top:bottom, left:right].copy()
        inner = (slice(rows.start - top, rows.stop - top), slice(cols.start - left, cols.stop - left))
        region[inner] = x_text_c  # x_text equals x outside the canvas (m = 0 there)
        centroids = self._centroids[c]
        labels = quantise(region, centroids)
        cluster = choose_cluster(labels[inner], support, len(centroids), self.rng)
        return tissue_mask(labels, cluster, sigma)[inner]
