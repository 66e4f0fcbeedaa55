"""Anomaly scores of a window batch (method_numbers.md ("Inference and the anomaly score")): ensemble, single-step, multi-step, unconditional;
residual and segmentation for the comparison methods.

Each returns a score function for :func:`sliding_window_scores`: windows (B, C, P, P) →
(scores (B, P, P), restorations (B, C, P, P)). Scores average |restoration − input| over channels.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

from disyre_v2.training.score_names import MODEL_SCORES
from disyre_v2.training.schedule import SeverityScheduler

Network = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]
SCORE_NAMES = MODEL_SCORES


def _levels_tensor(level: int, count: int, device: torch.device) -> torch.Tensor:
    return torch.full((count,), int(level), dtype=torch.long, device=device)


def ensemble_score(network: Network, levels: Sequence[int], per_level: bool = False) -> Callable:
    """DISYRE v2: AS = mean over t ∈ E of |P(x, t) − x|, all levels in one forward pass.

    ``per_level``: scores (B, 1 + L, P, P), the ensemble's AS first, then each level's |P(x, t) − x|
    (for the spread of the terms the ensemble averages: --save_uncertainty)."""
    levels = [int(t) for t in levels]
    if not levels:
        raise ValueError("the ensemble needs at least one level")

    def score(windows: torch.Tensor):
        b = windows.shape[0]
        batch = windows.repeat(len(levels), 1, 1, 1)  # level-major: [x·t0, x·t1, ...]
        t = torch.repeat_interleave(torch.tensor(levels, dtype=torch.long, device=windows.device), b)
        restored = network(batch, t).float().reshape(len(levels), *windows.shape)
        residuals = (restored - windows.float()).abs()
        scores = residuals.mean(dim=(0, 2))
        if per_level:
            scores = torch.cat([scores[:, None], residuals.mean(dim=2).permute(1, 0, 2, 3)], dim=1)
        return scores, restored.mean(dim=0)

    return score


def singlestep_score(network: Network, level: int) -> Callable:
    """AS = |P(x, t) − x| at one assumed severity t."""
    return ensemble_score(network, [level])


def unconditional_score(network: Network) -> Callable:
    """AS = |P(x) − x| for a model trained without the level input (``unconditional``), and of the
    reconstruction and denoising baselines (``residual``: VAE, DAE)."""

    def score(windows: torch.Tensor):
        restored = network(windows, None).float()
        return (restored - windows.float()).abs().mean(dim=1), restored

    return score


def segmentation_score(network: Network) -> Callable:
    """AS = σ(P(x)) for a network that predicts the logit of an anomaly map (FPI: the interpolation
    factor α·m). It restores nothing: the input stands in for the restoration."""

    def score(windows: torch.Tensor):
        logits = network(windows, None).float()
        if logits.shape[1] != 1:
            raise ValueError(f"--score segmentation needs a network with one output channel, got {logits.shape[1]}")
        return torch.sigmoid(logits[:, 0]), windows.float()

    return score


def multistep_levels(num_levels: int, step: int) -> list[int]:
    """T−1, T−1−Δ, ... while > 0: the levels visited by the DISYRE v1 restoration."""
    return list(range(num_levels - 1, 0, -int(step)))


def multistep_score(network: Network, scheduler: SeverityScheduler, step: int) -> Callable:
    """DISYRE v1: x_{T−1} = x; x̂0 = P(x_t, t); x_{t−Δ} = clip(x̂0 + (α(t−Δ)/α(t))(x_t − x̂0), 0, 1);
    AS = mean over steps of |x_t − x̂0|. The last step goes down to level 0."""
    levels = multistep_levels(scheduler.num_levels, step)

    def score(windows: torch.Tensor):
        x_t = windows.float()
        total = torch.zeros(windows.shape[0], *windows.shape[2:], device=windows.device)
        x0_hat = x_t
        for i, t in enumerate(levels):
            x0_hat = network(x_t, _levels_tensor(t, windows.shape[0], windows.device)).float()
            total += (x_t - x0_hat).abs().mean(dim=1)
            t_next = levels[i + 1] if i + 1 < len(levels) else 0
            x_t = scheduler.restoration_step(x_t, x0_hat, t, t_next)
        return total / len(levels), x0_hat

    return score
