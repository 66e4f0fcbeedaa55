"""Embedding of the integer severity level t (method_numbers.md ("Network")).

The level is turned into a fixed sinusoidal vector (as in Transformer position encodings) and then
into a learned vector by a two-layer MLP; every residual block adds its own projection of it.
"""
from __future__ import annotations

import math

import torch
from torch import nn

# Longest wavelength of the sinusoids; 10 000 is the usual choice and covers T = 100 levels easily.
MAX_PERIOD = 10_000.0


def sinusoidal_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features of levels `t` (shape (B,)): (B, dim) float32, [cos | sin] halves.

    Frequencies are geometric from 1 down to 1/MAX_PERIOD so that nearby levels differ in the
    fast components and distant ones in the slow components. An odd `dim` gets a zero last column.
    """
    if dim < 2:
        raise ValueError(f"time embedding dimension must be at least 2, got {dim}")
    half = dim // 2
    exponents = torch.arange(half, dtype=torch.float32, device=t.device) / half
    frequencies = torch.exp(-math.log(MAX_PERIOD) * exponents)
    angles = t.to(torch.float32)[:, None] * frequencies[None, :]
    features = torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)
    if dim % 2:
        features = nn.functional.pad(features, (0, 1))
    return features


class TimeEmbedding(nn.Module):
    """t -> sinusoid(embed_dim) -> Linear -> SiLU -> Linear -> (B, hidden_dim).

    No activation at the end: each residual block applies SiLU before its own projection.
    """

    def __init__(self, embed_dim: int, hidden_dim: int):
        super().__init__()
        if embed_dim < 2 or hidden_dim < 1:
            raise ValueError(
                f"time_embed_dim must be >= 2 and time_hidden_dim >= 1, got {embed_dim}, {hidden_dim}"
            )
        self.embed_dim = embed_dim
        self.mlp = nn.Sequential(
            nn.Linear(embed_dim, hidden_dim),
            nn.SiLU(),
            nn.Linear(hidden_dim, hidden_dim),
        )

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(sinusoidal_embedding(t, self.embed_dim))
