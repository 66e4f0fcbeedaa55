"""Volume-level and slice-level detection: one score per volume or per axial slice, ranked.

A volume (slice) is anomalous when its label has any voxel > 0 (inside the brain). AUROC and AP
come from scikit-learn; they are undefined (None) when only one class is present.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from disyre_v2.inference.volume_score import top_fraction_mean

SLICE_REDUCTIONS = ("max", "top1")


def slice_scores(score_map: np.ndarray, label: np.ndarray, brain: np.ndarray,
                 reduction: str = "max") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(slice indices, scores, anomalous) for the axial slices (array axis 0) holding brain voxels.

    The score of a slice is the maximum ("max") or the mean of the top 1 % ("top1") of its brain
    voxels; the slice is anomalous when a brain voxel of it is labelled.
    """
    if reduction not in SLICE_REDUCTIONS:
        raise ValueError(f"slice reduction must be one of {SLICE_REDUCTIONS}, not {reduction!r}")
    indices, scores, anomalous = [], [], []
    for z in np.flatnonzero(brain.any(axis=(1, 2))):
        inside = brain[z]
        values = score_map[z][inside]
        scores.append(float(values.max()) if reduction == "max" else top_fraction_mean(values))
        anomalous.append(bool((label[z][inside] > 0).any()))
        indices.append(int(z))
    return np.array(indices, int), np.array(scores, np.float64), np.array(anomalous, bool)


@dataclass
class RankingMetrics:
    auroc: float | None
    average_precision: float | None
    n_anomalous: int
    n_normal: int

    def to_dict(self) -> dict:
        return asdict(self)


def ranking_metrics(scores: np.ndarray, anomalous: np.ndarray) -> RankingMetrics:
    """AUROC and AP of a ranking (None for both when one class is missing)."""
    scores = np.asarray(scores, np.float64)
    anomalous = np.asarray(anomalous, bool)
    n_pos, n_neg = int(anomalous.sum()), int((~anomalous).sum())
    if n_pos == 0 or n_neg == 0:
        return RankingMetrics(None, None, n_pos, n_neg)
    return RankingMetrics(float(roc_auc_score(anomalous, scores)),
                          float(average_precision_score(anomalous, scores)), n_pos, n_neg)
