"""The volume-level anomaly score (method_numbers.md ("Evaluation")): mean of the top 1 % of a map's brain voxels.

Defined once, here where volume_scores.csv is written; evaluation uses the same functions when it
has to compute the score itself.
"""
from __future__ import annotations

import math

import numpy as np

TOP_FRACTION = 0.01


def top_fraction_mean(values: np.ndarray, fraction: float = TOP_FRACTION) -> float:
    """Mean of the ceil(fraction · n) largest values (at least one)."""
    values = np.asarray(values, np.float64).ravel()
    if values.size == 0:
        raise ValueError("no value to score")
    k = max(1, math.ceil(fraction * values.size))
    return float(np.partition(values, values.size - k)[values.size - k:].mean())


def volume_score(score_map: np.ndarray, brain: np.ndarray) -> float:
    """Mean of the top 1 % of the map's brain voxels."""
    return top_fraction_mean(score_map[brain])
