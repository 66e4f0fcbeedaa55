"""Multi-head self-attention over the pixels of a feature map, with a residual connection."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from disyre_v2.training.network.residual_block import check_groups


class SelfAttention2d(nn.Module):
    """GroupNorm, then attention of every pixel to every pixel; heads of `head_dim` channels."""

    def __init__(self, channels: int, head_dim: int, norm_groups: int):
        super().__init__()
        if head_dim < 1 or channels % head_dim:
            raise ValueError(
                f"attention over {channels} channels needs attention_head_dim dividing it, "
                f"got {head_dim}"
            )
        check_groups(channels, norm_groups, "SelfAttention2d")
        self.num_heads = channels // head_dim
        self.norm = nn.GroupNorm(norm_groups, channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.out = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)  # (B, HW, C)
        q, k, v = self.qkv(tokens).chunk(3, dim=-1)
        # (B, heads, HW, head_dim); scaled_dot_product_attention scales by 1/sqrt(head_dim).
        q, k, v = (z.reshape(b, h * w, self.num_heads, -1).transpose(1, 2) for z in (q, k, v))
        attended = F.scaled_dot_product_attention(q, k, v)
        attended = attended.transpose(1, 2).reshape(b, h * w, c)
        return x + self.out(attended).transpose(1, 2).reshape(b, c, h, w)
