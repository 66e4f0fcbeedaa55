"""ConvVAE: the convolutional variational autoencoder of the UPD benchmark's reconstruction baseline
(Lagogiannis et al.; iolag/UPD_study, models/VAE), written for our patches.

Encoder: per width a stride-2 3×3 convolution, BatchNorm and LeakyReLU (UPD: widths 16·2^i, one
halving each, down to 2×2), a 1×1 convolution to ``bottleneck_channels`` (16) and a dense layer to
the mean and log-variance of a ``latent_dim`` (512) Gaussian. Decoder: the mirror (dense layer, 1×1
convolution, stride-2 transposed convolutions) and a 1×1 convolution to the channels, no output
activation. In training the forward pass samples z (reparameterisation) and returns
(reconstruction, μ, log σ²); in eval mode it decodes μ and returns the reconstruction alone, so the
predictor's residual score |x − P(x)| treats it like any restoring network.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def _stage(block: type[nn.Module], channels_in: int, channels_out: int, **kwargs) -> list[nn.Module]:
    return [block(channels_in, channels_out, bias=False, **kwargs), nn.BatchNorm2d(channels_out), nn.LeakyReLU(0.2)]


class ConvVAE(nn.Module):
    def __init__(self, in_channels: int, patch_size: Sequence[int], widths: Sequence[int], latent_dim: int,
                 bottleneck_channels: int = 16):
        super().__init__()
        widths = [int(w) for w in widths]
        patch = [int(p) for p in patch_size]
        if not widths or latent_dim < 1 or bottleneck_channels < 1:
            raise ValueError(f"ConvVAE needs at least one width, latent_dim >= 1 and bottleneck_channels >= 1, "
                             f"got {widths}, {latent_dim}, {bottleneck_channels}")
        factor = 2 ** len(widths)
        if any(p % factor for p in patch):
            raise ValueError(f"ConvVAE: patch {patch} must be divisible by 2^{len(widths)} = {factor} "
                             f"(one halving per width)")
        self.in_channels, self.latent_dim = int(in_channels), int(latent_dim)
        self.bottleneck = (int(bottleneck_channels), patch[0] // factor, patch[1] // factor)
        features = self.bottleneck[0] * self.bottleneck[1] * self.bottleneck[2]
        encoder, channels = [], int(in_channels)
        for width in widths:
            encoder += _stage(nn.Conv2d, channels, width, kernel_size=3, stride=2, padding=1)
            channels = width
        self.encoder = nn.Sequential(*encoder, *_stage(nn.Conv2d, channels, bottleneck_channels, kernel_size=1),
                                     nn.Flatten())
        self.to_moments = nn.Linear(features, 2 * latent_dim)
        self.from_latent = nn.Linear(latent_dim, features)
        decoder = _stage(nn.Conv2d, bottleneck_channels, widths[-1], kernel_size=1)
        channels = widths[-1]
        for width in reversed(widths):
            decoder += _stage(nn.ConvTranspose2d, channels, width, kernel_size=4, stride=2, padding=1)
            channels = width
        self.decoder = nn.Sequential(*decoder, nn.Conv2d(channels, in_channels, 1))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_variance = self.to_moments(self.encoder(x)).chunk(2, dim=1)
        return mean, log_variance.clamp(-30.0, 20.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.from_latent(z).view(-1, *self.bottleneck))

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None):
        """Training: (reconstruction of a sampled z, μ, log σ²). Eval: the reconstruction of μ.
        ``t`` is accepted and ignored (the predictor calls every network as P(x, t))."""
        mean, log_variance = self.encode(x)
        if not self.training:
            return self.decode(mean)
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * log_variance)
        return self.decode(z), mean, log_variance


def vae_widths(patch_size: Sequence[int], base: int = 16, smallest: int = 2, cap: int = 512) -> list[int]:
    """UPD's widths base·2^i, one halving per width, until the shorter side of the patch is ``smallest``."""
    halvings, side = 0, min(int(p) for p in patch_size)
    while side // 2 >= smallest and side % 2 == 0:
        side //= 2
        halvings += 1
    return [min(base * 2 ** i, cap) for i in range(max(halvings, 1))]


def kl_divergence(mean: torch.Tensor, log_variance: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, σ²) ‖ N(0, 1)) per latent dimension: −½ (1 + log σ² − μ² − σ²)."""
    return -0.5 * (1 + log_variance - mean ** 2 - log_variance.exp())
