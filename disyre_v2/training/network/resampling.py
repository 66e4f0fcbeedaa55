"""Changes of resolution between U-Net levels; both keep the channel count."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class Downsample(nn.Module):
    """Learned 2x downsampling: 3x3 convolution with stride 2."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """2x nearest-neighbour upsampling followed by a 3x3 convolution (no checkerboard artefacts)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
