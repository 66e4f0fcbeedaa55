"""Texture corruption with a foreign patch: paper eq. (1), and the per-worker foreign-patch cache.

Eq. (1):  x_text = (1 − α_text·m)·x + α_text·m·x̄_fp,
where x̄_fp is a patch of another healthy slice rescaled so that, inside the mask support
{m > 0}, its min and max equal those of x there (DAG). FPI (DISYRE v1) uses x_fp unrescaled.
"""
from __future__ import annotations

import numpy as np


def rescale_to_support(foreign: np.ndarray, target: np.ndarray, support: np.ndarray) -> np.ndarray:
    """x̄_fp: per channel, map [min, max] of ``foreign`` on ``support`` onto that of ``target``.

    ``foreign`` and ``target`` are (C, H, W), ``support`` (H, W) boolean and not empty. A foreign
    patch that is constant on the support becomes the target's minimum there.
    """
    f = foreign[:, support]
    x = target[:, support]
    f_min, f_max = f.min(axis=1), f.max(axis=1)
    x_min, x_max = x.min(axis=1), x.max(axis=1)
    f_range = f_max - f_min
    gain = np.divide(x_max - x_min, f_range, out=np.zeros_like(f_range), where=f_range > 0)
    return ((foreign - f_min[:, None, None]) * gain[:, None, None] + x_min[:, None, None]).astype(
        target.dtype, copy=False)


def blend_texture(x: np.ndarray, foreign: np.ndarray, mask: np.ndarray, alpha_text: float) -> np.ndarray:
    """Eq. (1): x_text = (1 − α_text·m)·x + α_text·m·x̄_fp; ``mask`` (H, W) broadcasts over channels."""
    weight = (alpha_text * mask).astype(x.dtype, copy=False)
    return (1 - weight) * x + weight * foreign


class ForeignPatchCache:
    """Crops (C, S, S) of recent healthy samples, used as foreign patches (first in, first out).

    A sample's foreign patch comes from the cache (crops of earlier batches) or from another sample
    of the current batch; a sample never receives its own crop unless it is the only one there is.
    """

    def __init__(self, capacity: int):
        self.capacity = int(capacity)
        self._crops: np.ndarray | None = None

    def __len__(self) -> int:
        return 0 if self._crops is None else len(self._crops)

    def choose(self, current: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One foreign patch per sample of the batch; ``current`` holds this batch's crops (B, C, S, S)."""
        cached = self._crops
        if cached is not None and cached.shape[1:] != current.shape[1:]:
            cached = None  # channel count or canvas changed: old crops do not fit
        pool = current if cached is None else np.concatenate([cached, current])
        n_cached = len(pool) - len(current)
        out = np.empty_like(current)
        for i in range(len(current)):
            others = len(pool) - 1
            if others == 0:
                out[i] = current[i]
                continue
            # Draw among all pool entries except sample i's own crop (at n_cached + i).
            j = int(rng.integers(others))
            out[i] = pool[j + (j >= n_cached + i)]
        self._push(current, cached)
        return out

    def state_dict(self) -> dict:
        """The cached crops as a tensor-free dict of numpy arrays (for exact resume of a run)."""
        return {"crops": None if self._crops is None else self._crops.copy()}

    def load_state_dict(self, state: dict) -> None:
        crops = state.get("crops")
        self._crops = None if crops is None else np.asarray(crops, np.float32).copy()

    def _push(self, current: np.ndarray, cached: np.ndarray | None) -> None:
        if self.capacity == 0:
            self._crops = None
            return
        merged = current if cached is None else np.concatenate([cached, current])
        self._crops = merged[-self.capacity:].copy()
