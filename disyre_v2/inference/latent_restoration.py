"""r-VAE: MAP restoration of an image under a VAE prior (Chen, You, Tezcan, Konukoglu, "Unsupervised
lesion detection via image restoration with a normative prior", Medical Image Analysis 64, 2020),
as the UPD benchmark runs it (Lagogiannis et al.; iolag/UPD_study, models/VAE/r-VAEtrainer.py), the
r-VAE row that the DISYRE paper reports.

The paper restores x by MAP estimation under the VAE's normative prior,

    x_r = argmin_{x_r}  −ELBO(x_r) + λ · TV(x_r − x),

approximated by K steps of gradient descent from x_r = x; the anomaly map is |x − x_r|. Per window
b with N = C·H·W pixels and a latent of J dimensions, the objective minimised here is UPD's loss of
one image (the VAE's training loss, MSE + β · mean KL, plus UPD's total variation), times N:

    E_b(x_r) = Σ_pixels (x_r − D(μ(x_r)))² + β · (N / J) · Σ_j KL_j(x_r) + λ · Σ (∇_h d)² + (∇_w d)²,

d = x_r − x, ∇ forward differences inside the window (UPD's TV: squared, not the paper's absolute
differences). Each step is x_r ← x_r − α · clip(∂E_b/∂x_r, ±50) (the authors' and UPD's clip).
UPD steps 10³ on the mean of this loss over a batch of 64 single-channel 128 × 128 slices, i.e.
10³ / (64 · 128²) ≈ 9.5 · 10⁻⁴ per pixel on E_b: the default α, so that a pixel moves as in UPD
whatever the window's size, channels or batch. K = 500 and λ = 1.2 (UPD's MRI value, chosen there on
healthy validation slices) are UPD's.

Departures, for determinism and batch independence: the reconstruction decodes μ (UPD samples z at
every step, the network in eval mode: BatchNorm with its running statistics, so each window's
restoration depends on that window alone); E is summed over windows (UPD: averaged over its
batch, which ties a slice's step to the batch size).
"""
from __future__ import annotations

import logging
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass
from typing import Callable, Protocol

import torch

from disyre_v2.training.network.vae import kl_divergence

logger = logging.getLogger(__name__)

# UPD's restoration step (10³) on its batch-mean loss: a batch of 64 slices of 1 × 128 × 128 pixels.
UPD_STEP_SIZE, UPD_BATCH, UPD_PIXELS = 1e3, 64, 128 * 128


class LatentVariableModel(Protocol):
    """What the restoration needs of the network: ConvVAE's encode (μ, log σ²) and decode."""

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...

    def decode(self, z: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class RestorationSettings:
    """K, α (per pixel, on the summed objective E_b), λ, β and the gradient clip of the r-VAE restoration."""

    steps: int = 500
    step_size: float = UPD_STEP_SIZE / (UPD_BATCH * UPD_PIXELS)
    tv_weight: float = 1.2
    kl_weight: float = 1e-3  # β of VaeTrainer's loss, the one the prior was trained with
    gradient_clip: float = 50.0

    def __post_init__(self):
        if self.steps < 0 or self.step_size < 0 or self.tv_weight < 0 or self.kl_weight < 0 or self.gradient_clip <= 0:
            raise ValueError(f"restoration settings must be >= 0 (the clip > 0), got {self}")

    def describe(self) -> dict:
        return asdict(self)


def total_variation(difference: torch.Tensor) -> torch.Tensor:
    """Per sample Σ over channels of the squared forward differences along height and width (UPD's
    TV, not normalised): (B, C, H, W) → (B,)."""
    along_h = (difference[:, :, 1:, :] - difference[:, :, :-1, :]).square().sum(dim=(1, 2, 3))
    along_w = (difference[:, :, :, 1:] - difference[:, :, :, :-1]).square().sum(dim=(1, 2, 3))
    return along_h + along_w


def restoration_objective(vae: LatentVariableModel, restored: torch.Tensor, original: torch.Tensor,
                          settings: RestorationSettings,
                          autocast: Callable[[], AbstractContextManager] = nullcontext) -> torch.Tensor:
    """E_b(x_r) per window (B,): N · (−ELBO as VaeTrainer's loss of one window) + λ · TV(x_r − x)."""
    with autocast():
        mean, log_variance = vae.encode(restored)
        reconstruction = vae.decode(mean)  # deterministic: the decoded mean, no sampled z
    pixels = restored[0].numel()
    squared_error = (restored - reconstruction.float()).square().flatten(1).sum(dim=1)
    kl = kl_divergence(mean.float(), log_variance.float()).flatten(1)
    prior = settings.kl_weight * pixels / kl.shape[1] * kl.sum(dim=1)
    return squared_error + prior + settings.tv_weight * total_variation(restored - original)


def restore(vae: LatentVariableModel, windows: torch.Tensor, settings: RestorationSettings = RestorationSettings(),
            autocast: Callable[[], AbstractContextManager] = nullcontext) -> torch.Tensor:
    """K clipped gradient steps on E from x_r = x; float32 (B, C, H, W). Runs with gradients even when
    called under torch.inference_mode (the predictor's), on copies of the windows."""
    with torch.inference_mode(False), torch.enable_grad():
        original = windows.detach().float().clone()
        restored = original.clone()
        for _ in range(int(settings.steps)):
            restored.requires_grad_(True)
            objective = restoration_objective(vae, restored, original, settings, autocast).sum()
            (gradient,) = torch.autograd.grad(objective, restored)
            with torch.no_grad():
                restored = restored - settings.step_size * gradient.clamp(-settings.gradient_clip,
                                                                          settings.gradient_clip)
    return restored.detach()


def restoration_score(vae: LatentVariableModel, settings: RestorationSettings = RestorationSettings(),
                      autocast: Callable[[], AbstractContextManager] = nullcontext) -> Callable:
    """AS = |x − x_r| averaged over channels, x_r the r-VAE restoration; a score function for
    :func:`disyre_v2.inference.sliding_window.sliding_window_scores`."""
    if not (callable(getattr(vae, "encode", None)) and callable(getattr(vae, "decode", None))):
        raise ValueError(f"--score restoration needs a VAE (encode and decode), not a {type(vae).__name__}")
    if getattr(vae, "training", False):
        raise ValueError("--score restoration needs the VAE in eval mode (BatchNorm statistics, no sampling)")

    def score(windows: torch.Tensor):
        restored = restore(vae, windows, settings, autocast)
        return (restored - windows.float()).abs().mean(dim=1), restored

    return score
