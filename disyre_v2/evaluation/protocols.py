"""Voxel-level protocols: which voxels are pooled, and how [Dice] searches its threshold.

- ``exact`` (default): every brain voxel of every case on the raw grid; AP step-wise as in
  scikit-learn, [Dice] = max of 2PR/(P+R) over every distinct score (histogram bins of 2^-13 relative
  width), score >= threshold anomalous.
- ``disyre``: the published DISYRE evaluation (METHOD.md §8), see :mod:`protocol_disyre`.
- ``upd``: the UPD benchmark's evaluation (Lagogiannis et al. 2024), see :mod:`protocol_upd`.

Every protocol object has ``add(case_id, score_map, label, brain)`` and ``result() -> dict``.
documentation/how_to/evaluate.md puts them side by side.
"""
from __future__ import annotations

from dataclasses import asdict

import numpy as np

from disyre_v2.evaluation.pooled_curve import DEFAULT_DROP_BITS, PooledPRCurve

PROTOCOLS = ("exact", "disyre", "upd")


def best_dice_at_thresholds(tp: np.ndarray, fp: np.ndarray, n_positive: int,
                            thresholds: np.ndarray) -> tuple[float, float]:
    """(max Dice, its threshold) over fixed thresholds from the counts predicted anomalous at each.

    Dice = 2·TP / (TP + FP + P); ties go to the first threshold in the given order.
    """
    tp = np.asarray(tp, np.float64)
    if n_positive == 0:
        return float("nan"), float("nan")
    dice = 2.0 * tp / np.maximum(tp + np.asarray(fp, np.float64) + n_positive, 1)
    best = int(np.argmax(dice))
    return float(dice[best]), float(thresholds[best])


class ExactProtocol:
    """All brain voxels pooled in a bounded-memory histogram (the default)."""

    name = "exact"

    def __init__(self, drop_bits: int = DEFAULT_DROP_BITS):
        self.curve = PooledPRCurve(drop_bits)

    def add(self, case_id: str, score_map: np.ndarray, label: np.ndarray, brain: np.ndarray) -> None:
        self.curve.add(score_map[brain], label[brain])

    def add_histogram(self, histogram) -> None:
        """Add a case already binned (:class:`SparseHistogram`), sparing a second pass over its voxels."""
        self.curve.add_histogram(histogram.bins, histogram.positives, histogram.negatives)

    def result(self) -> dict:
        summary = asdict(self.curve.summary())
        summary.update(protocol="exact", voxels="all brain voxels on the raw grid",
                       thresholds="every distinct score (bins of 2^-%d relative width)" % (23 - self.curve.drop_bits),
                       rule="score >= threshold")
        return summary


def make_protocol(name: str, seed: int = 0, drop_bits: int = DEFAULT_DROP_BITS):
    """The protocol object of that name (``seed`` drives the ``disyre`` sampling)."""
    from disyre_v2.evaluation.protocol_disyre import DisyreProtocol
    from disyre_v2.evaluation.protocol_upd import UpdProtocol

    if name == "exact":
        return ExactProtocol(drop_bits)
    if name == "disyre":
        return DisyreProtocol(seed=seed)
    if name == "upd":
        return UpdProtocol(drop_bits=drop_bits)
    raise ValueError(f"Unknown protocol {name!r}; choose one of {', '.join(PROTOCOLS)}.")
