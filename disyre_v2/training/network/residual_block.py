"""Residual block of the U-Net: two 3x3 convolutions with GroupNorm + SiLU, time added between."""
from __future__ import annotations

import torch
from torch import nn


def check_groups(channels: int, groups: int, where: str) -> None:
    """GroupNorm needs the channel count to be a multiple of the number of groups."""
    if groups < 1 or channels % groups:
        raise ValueError(
            f"{where}: {channels} channels cannot be split into norm_groups={groups} groups; "
            "choose widths that are multiples of norm_groups"
        )


class ResidualBlock(nn.Module):
    """GN-SiLU-conv, + Linear(SiLU(time)), GN-SiLU-conv, plus a (1x1 if needed) shortcut.

    With `time_dim=None` the block has no time projection (unconditional model).
    """

    def __init__(self, in_channels: int, out_channels: int, time_dim: int | None, norm_groups: int):
        super().__init__()
        check_groups(in_channels, norm_groups, "ResidualBlock input")
        check_groups(out_channels, norm_groups, "ResidualBlock output")
        self.norm1 = nn.GroupNorm(norm_groups, in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.time_proj = nn.Linear(time_dim, out_channels) if time_dim is not None else None
        self.norm2 = nn.GroupNorm(norm_groups, out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.act = nn.SiLU()
        self.shortcut = (
            nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()
        )

    def forward(self, x: torch.Tensor, time: torch.Tensor | None) -> torch.Tensor:
        h = self.conv1(self.act(self.norm1(x)))
        if self.time_proj is not None:
            # One bias per channel from the level embedding (method_numbers.md ("Network"): added in every block).
            h = h + self.time_proj(self.act(time))[:, :, None, None]
        h = self.conv2(self.act(self.norm2(h)))
        return self.shortcut(x) + h
