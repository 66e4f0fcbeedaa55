"""Voxel-level protocols: which voxels are pooled, and how [Dice] searches its threshold.

- ``exact`` (default): every brain voxel of every case on the raw grid; AP step-wise as in
  scikit-learn, [Dice] = max of 2PR/(P+R) over every distinct score (histogram bins of 2^-13 relative
  width), score >= threshold anomalous.
- ``disyre``: the published DISYRE evaluation (method_numbers.md ("Evaluation")), see :mod:`protocol_disyre`.
- ``upd``: the UPD benchmark's evaluation (Lagogiannis et al. 2024), see :mod:`protocol_upd`.

Every protocol object has ``add(case_id, score_map, label, brain)`` and ``result() -> dict``.
documentation/how_to/evaluate.md puts them side by side.
"""
from __future__ import annotations

from dataclasses import asdict

import numpy as np

from disyre_v2.evaluation.pooled_curve import DEFAULT_DROP_BITS, PooledPRCurve
from disyre_v2.evaluation.protocol_disyre import DisyreProtocol
from disyre_v2.evaluation.protocol_upd import UpdProtocol

PROTOCOLS = ("exact", "disyre", "upd")


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
    if name == "exact":
        return ExactProtocol(drop_bits)
    if name == "disyre":
        return DisyreProtocol(seed=seed)
    if name == "upd":
        return UpdProtocol(drop_bits=drop_bits)
    raise ValueError(f"Unknown protocol {name!r}; choose one of {', '.join(PROTOCOLS)}.")
