"""Coarse noise of the denoising autoencoder (Kascenas et al., MIDL 2022).

Per sample and channel, Gaussian noise N(0, σ²) is drawn on a coarse grid of ``resolution`` ×
``resolution`` cells, upsampled bilinearly (corners aligned) to the patch, shifted by a random cyclic roll (so the cell
borders fall anywhere; the paper's code draws one roll per batch, we draw one per sample) and kept on
the brain only, not clipped; the network learns to restore the clean slice from x + noise. The
paper's values (AntanasKascenas/DenoisingAE): a 16 × 16 grid over its 128-pixel (1 mm) slices,
σ = 0.2. Our patches cover the same 128 mm at 2 mm (64 pixels), so 16 cells keep the noise's
physical scale.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from batchgenerators.transforms.abstract_transforms import AbstractTransform

from disyre_v2.training.seeded import SeededRandomness


def coarse_noise(shape: tuple[int, int, int, int], resolution: int, sigma: float,
                 rng: np.random.Generator) -> np.ndarray:
    """(B, C, H, W) noise: N(0, σ²) on a resolution × resolution grid, upsampled bilinearly to H × W and
    rolled by a random offset per sample (the same for its channels)."""
    batch, channels, height, width = shape
    grid = rng.normal(0.0, sigma, size=(batch, channels, resolution, resolution)).astype(np.float32)
    noise = F.interpolate(torch.from_numpy(grid), size=(height, width), mode="bilinear",
                          align_corners=True).numpy()
    for i in range(batch):
        noise[i] = np.roll(noise[i], (int(rng.integers(height)), int(rng.integers(width))), axis=(-2, -1))
    return noise


class CoarseNoiseTransform(SeededRandomness, AbstractTransform):
    """Batch transform: ``data`` (B, C, P, P) in [0, 1] → ``data`` = x + coarse noise on the brain,
    ``target`` = x, ``t`` = 0 (the DAE has no level input). Owns a seeded Generator like the
    anomaly synthesis, so a loader reseeds it per batch."""

    def __init__(self, resolution: int = 16, sigma: float = 0.2, seed: int | None = None):
        if resolution < 1 or sigma <= 0:
            raise ValueError(f"coarse noise needs resolution >= 1 and sigma > 0, got {resolution}, {sigma}")
        self.resolution, self.sigma = int(resolution), float(sigma)
        self.reseed(seed)

    def __call__(self, **data_dict):
        data = np.asarray(data_dict["data"], np.float32)
        brain = np.asarray(data_dict["mask"]) > 0
        noise = coarse_noise(data.shape, self.resolution, self.sigma, self.rng) * brain
        data_dict["target"] = data
        data_dict["data"] = (data + noise).astype(np.float32)
        data_dict["t"] = np.zeros(len(data), np.int64)
        return data_dict

    def __repr__(self) -> str:
        return f"{type(self).__name__}(resolution={self.resolution}, sigma={self.sigma})"
