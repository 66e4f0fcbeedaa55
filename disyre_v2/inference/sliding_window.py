"""Gaussian-weighted sliding windows over batches of 2D slices (method_numbers.md ("Inference and the anomaly score")), knowing nothing of
files or plans: the score function is passed in.

For every window the score map AS is weighted by a Gaussian importance map w (σ = P/8, peak 1,
clamped below at 1e-3) and by the window's foreground fraction f, and blended as
Σ w·f·AS / Σ w. Windows without any brain pixel are not evaluated (f = 0: they add 0 to the sum
but their w still counts in the denominator, exactly as if they had been evaluated).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Callable, Sequence

import numpy as np
import torch

# score_fn(windows (B, C, P, P)) -> (scores (B, P, P), restorations (B, C, P, P) or None); a score function
# with ``takes_brain = True`` is called score_fn(windows, brain (B, P, P) bool) and may leave work whose pixels
# all lie outside the brain undone (the predictor sets the map to 0 there).
ScoreFunction = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]


@lru_cache(maxsize=8)
def _gaussian_importance_map(patch: tuple[int, int], sigma_scale: float, min_value: float) -> np.ndarray:
    axes = []
    for size in patch:
        coordinates = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
        axes.append(np.exp(-0.5 * (coordinates / (size * sigma_scale)) ** 2))
    weights = np.outer(axes[0], axes[1])
    weights /= weights.max()
    return np.maximum(weights, min_value).astype(np.float32)


def gaussian_importance_map(patch: Sequence[int], sigma_scale: float = 0.125, min_value: float = 1e-3) -> torch.Tensor:
    """Peak-1 Gaussian over a window, σ = sigma_scale·P per axis, clamped below at ``min_value`` (cached)."""
    return torch.from_numpy(_gaussian_importance_map(tuple(int(p) for p in patch), float(sigma_scale), float(min_value)))


def window_starts(size: int, patch: int, step_fraction: float) -> list[int]:
    """Evenly spaced window starts covering [0, size) with steps of at most step_fraction·patch."""
    if size < patch:
        raise ValueError(f"axis of size {size} is smaller than the window {patch}; pad it first")
    if size == patch:
        return [0]
    n = int(np.ceil((size - patch) / (step_fraction * patch))) + 1
    return [int(round(i * (size - patch) / (n - 1))) for i in range(n)]


def pad_to_patch(array: torch.Tensor, patch: Sequence[int]) -> tuple[torch.Tensor, tuple[slice, slice]]:
    """Centred zero padding of the last two axes up to ``patch``; returns the array and the crop back."""
    height, width = array.shape[-2:]
    pad_h, pad_w = max(patch[0] - height, 0), max(patch[1] - width, 0)
    top, left = pad_h // 2, pad_w // 2
    padded = torch.nn.functional.pad(array, (left, pad_w - left, top, pad_h - top))
    return padded, (slice(top, top + height), slice(left, left + width))


def window_fractions(padded_brain: torch.Tensor, boxes: torch.Tensor, patch: tuple[int, int]) -> torch.Tensor:
    """(N, L) brain fraction of every window of every slice, from one integral image per slice."""
    n, height, width = padded_brain.shape
    integral = torch.zeros((n, height + 1, width + 1), dtype=torch.float64, device=padded_brain.device)
    integral[:, 1:, 1:] = padded_brain.to(torch.float64).cumsum(1).cumsum(2)
    y0, x0 = boxes[:, 0], boxes[:, 1]
    y1, x1 = y0 + patch[0], x0 + patch[1]
    sums = integral[:, y1, x1] - integral[:, y0, x1] - integral[:, y1, x0] + integral[:, y0, x0]
    return (sums / (patch[0] * patch[1])).to(torch.float32)


def sliding_window_scores(
    slices: torch.Tensor,
    brain: torch.Tensor,
    score_fn: ScoreFunction,
    patch: Sequence[int],
    *,
    step_fraction: float = 0.25,
    batch_windows: int = 64,
    sigma_scale: float = 0.125,
    min_weight: float = 1e-3,
    with_restoration: bool = False,
    output_device: torch.device | str | None = None,
    foreground_weighting: bool = True,
    fixed_batch: bool = False,
    score_terms: int = 0,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Blend window scores over all slices of a volume.

    ``slices`` (N, C, H, W) float and ``brain`` (N, H, W) bool. Windows of every slice are batched
    together, ``batch_windows`` per call of ``score_fn`` (which may expand each window over several
    levels); ``fixed_batch`` pads the last batch to that size with empty windows, so a compiled network
    sees one shape only. Windows are gathered and their maps scatter-added with batched tensor
    indexing (no Python loop per window), the blending buffers living on ``output_device`` (default:
    the device of ``slices``). Returns the float32 score map (N, H, W) and, if asked, the blended
    restoration (N, C, H, W; a weighted mean with weights w·f, 0 where no window had brain).
    ``foreground_weighting=False`` blends Σ w·AS / Σ w (f = 1 for every window with brain).
    ``score_terms`` K > 0: ``score_fn`` returns K maps per window (B, K, P, P), each blended alike into
    a (N, K, H, W) result (the blend is linear, so the blend of a mean is the mean of the blends).
    """
    if slices.ndim != 4 or brain.shape != (slices.shape[0], *slices.shape[2:]):
        raise ValueError(f"need slices (N, C, H, W) and brain (N, H, W), got {tuple(slices.shape)} and {tuple(brain.shape)}")
    if batch_windows < 1:
        raise ValueError(f"batch_windows must be at least 1, got {batch_windows}")
    patch = (int(patch[0]), int(patch[1]))
    out_device = torch.device(output_device) if output_device is not None else slices.device
    padded, crop = pad_to_patch(slices, patch)
    padded_brain, _ = pad_to_patch(brain.to(torch.float32), patch)
    n, channels, height, width = padded.shape
    weights = gaussian_importance_map(patch, sigma_scale, min_weight).to(out_device)
    boxes = torch.tensor([(y, x) for y in window_starts(height, patch[0], step_fraction)
                          for x in window_starts(width, patch[1], step_fraction)], dtype=torch.long)

    terms = (int(score_terms),) if score_terms else ()
    numerator = torch.zeros((n, height, width, *terms), dtype=torch.float32, device=out_device)
    denominator = torch.zeros((height, width), dtype=torch.float32, device=out_device)
    for y, x in boxes.tolist():
        denominator[y:y + patch[0], x:x + patch[1]] += weights
    restoration = torch.zeros((n, channels, height, width), dtype=torch.float32, device=out_device) if with_restoration else None
    # The restoration is an image, not a score: a plain weighted mean over the evaluated windows.
    restoration_weight = torch.zeros((n, height, width), dtype=torch.float32, device=out_device) if with_restoration else None

    # Every (slice, window) with brain, in one flat list: batches mix slices freely.
    fractions = window_fractions(padded_brain, boxes.to(padded_brain.device), patch).to(out_device)
    jobs = torch.nonzero(fractions > 0, as_tuple=False).to(out_device)  # [slice index, window index]
    boxes = boxes.to(out_device)
    rows_in_window = torch.arange(patch[0], device=out_device)
    cols_in_window = torch.arange(patch[1], device=out_device)
    for start in range(0, len(jobs), batch_windows):
        chunk = jobs[start:start + batch_windows]
        s, b = chunk[:, 0], chunk[:, 1]
        rows = (boxes[b, 0][:, None] + rows_in_window)[:, :, None]  # (B, P, 1)
        cols = (boxes[b, 1][:, None] + cols_in_window)[:, None, :]  # (B, 1, P)
        index = (s[:, None, None].to(padded.device), rows.to(padded.device), cols.to(padded.device))
        windows = padded.permute(0, 2, 3, 1)[index].permute(0, 3, 1, 2)  # (B, C, P, P)
        count = len(chunk)
        if fixed_batch and count < batch_windows:
            windows = torch.cat([windows, windows.new_zeros((batch_windows - count, *windows.shape[1:]))])
        if getattr(score_fn, "takes_brain", False):
            window_brain = padded_brain[index] > 0  # (B, P, P)
            if fixed_batch and count < batch_windows:
                window_brain = torch.cat([window_brain, window_brain.new_zeros((batch_windows - count, *patch))])
            scores, restored = score_fn(windows, window_brain)
        else:
            scores, restored = score_fn(windows)
        scores = scores[:count].to(out_device, torch.float32)
        weight = weights * (fractions[s, b][:, None, None] if foreground_weighting else 1.0)  # (B, P, P)
        target = (s[:, None, None].expand(-1, *patch), rows.expand(-1, -1, patch[1]), cols.expand(-1, patch[0], -1))
        if terms:
            numerator.index_put_(target, weight[..., None] * scores.permute(0, 2, 3, 1), accumulate=True)
        else:
            numerator.index_put_(target, weight * scores, accumulate=True)
        if restoration is not None:
            restored = restored[:count].to(out_device, torch.float32)
            restoration.permute(0, 2, 3, 1).index_put_(target, (weight[..., None] * restored.permute(0, 2, 3, 1)),
                                                       accumulate=True)
            restoration_weight.index_put_(target, weight.expand(count, *patch).contiguous(), accumulate=True)
    if terms:
        result = (numerator / denominator[..., None]).permute(0, 3, 1, 2)[..., crop[0], crop[1]]
    else:
        result = (numerator / denominator)[:, crop[0], crop[1]]
    if restoration is not None:
        restoration = (restoration / restoration_weight.clamp_min(1e-12)[:, None])[:, :, crop[0], crop[1]]
    return result, restoration
