"""The severity schedule of cold diffusion (method_numbers.md ("Severity schedule")), a small object like a diffusers scheduler.

Levels t = 0..T-1; t = 0 is healthy and t = T-1 fully corrupted (the paper's convention). With
β_i linear in [β_start, β_end] and ᾱ_i = Π_{j≤i}(1 − β_j), s_i = sqrt(ᾱ_i) and the severity of
level t is α(t) = s_{T−1−t}. B⁻¹(a) is the nearest level.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from disyre_v2.dataset.dataset_json import write_json_atomic

CONFIG_FILE_NAME = "schedule.json"


@dataclass(frozen=True)
class ScheduleConfig:
    num_levels: int = 100
    beta_start: float = 1e-3
    beta_end: float = 0.2


class SeverityScheduler:
    """α(t), its nearest-level inverse B⁻¹ and the multi-step restoration update."""

    def __init__(self, num_levels: int = 100, beta_start: float = 1e-3, beta_end: float = 0.2):
        if num_levels < 2:
            raise ValueError(f"num_levels must be at least 2, got {num_levels}")
        if not 0 < beta_start <= beta_end < 1:
            raise ValueError(f"need 0 < beta_start <= beta_end < 1, got {beta_start}, {beta_end}")
        self.config = ScheduleConfig(int(num_levels), float(beta_start), float(beta_end))
        betas = np.linspace(beta_start, beta_end, num_levels, dtype=np.float64)
        signal = np.sqrt(np.cumprod(1.0 - betas))
        # α(t) = s_{T−1−t}: increasing in t.
        self.alphas = signal[::-1].copy()

    @property
    def num_levels(self) -> int:
        return self.config.num_levels

    def alpha(self, t):
        """Severity α(t) of integer level(s) t."""
        t_arr = np.asarray(t)
        if np.any((t_arr < 0) | (t_arr >= self.num_levels)):
            raise ValueError(f"levels must lie in 0..{self.num_levels - 1}, got {t}")
        return self.alphas[t_arr]

    def level_of(self, severity):
        """B⁻¹(a) = argmin_t |α(t) − a| for scalar or array severities; returns int64."""
        a = np.asarray(severity, dtype=np.float64)
        # α is increasing: search the insertion point and pick the nearer neighbour.
        right = np.clip(np.searchsorted(self.alphas, a), 1, self.num_levels - 1)
        left = right - 1
        nearer_left = np.abs(a - self.alphas[left]) <= np.abs(self.alphas[right] - a)
        levels = np.where(nearer_left, left, right).astype(np.int64)
        return levels if levels.ndim else int(levels)

    def restoration_step(self, x_t: torch.Tensor, x0_hat: torch.Tensor, t: int, t_next: int) -> torch.Tensor:
        """DISYRE v1 multi-step update: x_{t'} = clip(x̂0 + (α(t')/α(t))·(x_t − x̂0), 0, 1)."""
        if not 0 <= t_next < t:
            raise ValueError(f"the restoration goes down in level: need 0 <= t_next < t, got {t_next}, {t}")
        ratio = float(self.alphas[t_next] / self.alphas[t])
        return torch.clamp(x0_hat + ratio * (x_t - x0_hat), 0.0, 1.0)

    # -- configuration ----------------------------------------------------------------------
    def to_dict(self) -> dict:
        return asdict(self.config)

    @classmethod
    def from_dict(cls, config: dict) -> "SeverityScheduler":
        return cls(**config)

    def save(self, folder: Path | str) -> Path:
        return write_json_atomic(self.to_dict(), Path(folder) / CONFIG_FILE_NAME)

    @classmethod
    def load(cls, folder: Path | str) -> "SeverityScheduler":
        return cls.from_dict(json.loads((Path(folder) / CONFIG_FILE_NAME).read_text()))
