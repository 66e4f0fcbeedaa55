"""``--score patch_density``: CutPaste's localisation (Li et al., CVPR 2021, Sec. 4.2) of a window batch.

Every window (P × P) is cut into sub-patches of ``score_patch`` pixels at a stride of ``score_stride``
(the network's; UPD: 16-pixel sub-patches at a stride of 4 on its 128-pixel slices, ours 8 at 2 on the
64-pixel patches of 2d_small: the same fractions), each sub-patch's encoder features f are scored by
their Mahalanobis distance under the Gaussian density of normal sub-patches, and the scores are brought
back to pixels by receptive-field upsampling with Gaussian smoothing (the paper's words): each pixel gets
the average of the scores of the sub-patches that cover it, weighted by a Gaussian (σ = a quarter of the
sub-patch side) centred on each sub-patch, Σ_p g_p(x) s_p / Σ_p g_p(x). UPD instead resizes the grid of
sub-patch scores bilinearly to the image. The windows are then blended like any score's
(inference/sliding_window.py).
"""
from __future__ import annotations

from contextlib import nullcontext
from functools import lru_cache
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F


# Sub-patches per encoder call: bounds the memory of one forward pass (a 2d_small window has 29 × 29 = 841).
MAX_SUB_PATCHES = 16384


@lru_cache(maxsize=8)
def _gaussian(size: int, sigma: float) -> np.ndarray:
    coordinates = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    axis = np.exp(-0.5 * (coordinates / sigma) ** 2)
    return np.outer(axis, axis).astype(np.float32)


def check_sub_patches(window: int, patch: int, stride: int) -> int:
    """Sub-patches per window side; every pixel must be covered, so (window − patch) must be a multiple of stride."""
    if patch > window or (window - patch) % stride:
        raise ValueError(f"sub-patches of {patch} pixels at a stride of {stride} do not tile windows of {window} "
                         f"pixels: (window − sub-patch) must be a multiple of the stride")
    return (window - patch) // stride + 1


def sub_patches(windows: torch.Tensor, patch: int, stride: int) -> torch.Tensor:
    """(B, C, P, P) → (B · L, C, patch, patch), L sub-patches per window in row-major order."""
    batch, channels, height, width = windows.shape
    check_sub_patches(height, patch, stride)
    check_sub_patches(width, patch, stride)
    columns = F.unfold(windows, patch, stride=stride)  # (B, C·patch², L)
    return columns.transpose(1, 2).reshape(-1, channels, patch, patch)


def patch_scores_to_pixels(scores: torch.Tensor, size: tuple[int, int], patch: int, stride: int,
                           sigma: float | None = None) -> torch.Tensor:
    """(B, L) sub-patch scores → (B, H, W) pixel scores: per pixel the Gaussian-weighted mean of the scores of
    the sub-patches covering it (σ default patch/4)."""
    weights = torch.from_numpy(_gaussian(int(patch), float(sigma or patch / 4.0))).to(scores.device).reshape(1, -1, 1)
    numerator = F.fold(scores.float()[:, None, :] * weights, size, patch, stride=stride)
    denominator = F.fold(weights.expand(1, -1, scores.shape[1]), size, patch, stride=stride)
    return (numerator / denominator)[:, 0]


def patch_density_score(network: torch.nn.Module, autocast: Callable = nullcontext) -> Callable:
    """Score function for sliding_window_scores: windows (B, C, P, P) → (pixel scores (B, P, P), the windows:
    nothing is restored). ``network`` is a CutPasteNet with a fitted density; ``autocast`` wraps the encoder.
    Given the windows' brain (B, P, P), sub-patches wholly outside it are not encoded (score 0)."""
    if not hasattr(network, "density_distance"):
        raise ValueError("--score patch_density needs a CutPasteTrainer model (a network with a fitted Gaussian "
                         "density of its patch features)")
    patch, stride = int(network.score_patch), int(network.score_stride)

    def score(windows: torch.Tensor, brain: torch.Tensor | None = None):
        pieces = sub_patches(windows, patch, stride)
        scores = torch.zeros(len(pieces), dtype=torch.float32, device=windows.device)
        # A sub-patch without a brain pixel only scores pixels outside the brain, which the map sets to 0:
        # its score is left at 0 without running the encoder (29 % of the sub-patches of a 2 mm synthetic-benchmark
        # volume cropped to its brain).
        chosen = (torch.arange(len(pieces), device=windows.device) if brain is None
                  else torch.nonzero(sub_patches(brain[:, None].float(), patch, stride).flatten(1).amax(1) > 0)[:, 0])
        for start in range(0, len(chosen), MAX_SUB_PATCHES):
            part = chosen[start:start + MAX_SUB_PATCHES]
            with autocast():
                features = network.features(pieces[part])
            scores[part] = network.density_distance(features.float()).float()
        scores = scores.reshape(len(windows), -1)
        return patch_scores_to_pixels(scores, tuple(windows.shape[-2:]), patch, stride), windows.float()

    score.takes_brain = True  # sliding_window_scores passes each window's brain (B, P, P)
    return score
