"""One volume's scores as a sparse histogram on the bins of :class:`PooledPRCurve`.

Kept per case, it gives that case's AP and its Dice at the pooled threshold without reading the map
again, and merged over a subset of cases (a lesion kind) the subset's pooled curve. Its size is the
number of distinct bins the case occupies (at most about 8192 per octave of scores with the default
10 dropped bits), usually far below its number of voxels.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from disyre_v2.evaluation.pooled_curve import (
    DEFAULT_DROP_BITS,
    CurveSummary,
    PRCurve,
    bin_index,
    bin_lower_edge,
    checked_scores,
    pr_curve,
    summarise,
)


@dataclass
class SparseHistogram:
    bins: np.ndarray  # ascending unique bin ids (uint32)
    positives: np.ndarray  # anomalous voxels per bin (int32 for one volume, int64 once merged)
    negatives: np.ndarray  # normal voxels per bin
    drop_bits: int = DEFAULT_DROP_BITS

    @classmethod
    def from_scores(cls, scores: np.ndarray, labels: np.ndarray, drop_bits: int = DEFAULT_DROP_BITS) -> "SparseHistogram":
        scores, labels = checked_scores(scores, labels)
        bins, inverse = np.unique(bin_index(scores, drop_bits), return_inverse=True)
        # int32 counts (a volume has < 2^31 voxels): 12 bytes per occupied bin, kept for every case.
        positives = np.bincount(inverse, weights=labels, minlength=bins.size).astype(np.int32)
        totals = np.bincount(inverse, minlength=bins.size).astype(np.int32)
        return cls(bins.astype(np.uint32), positives, totals - positives, drop_bits)

    @classmethod
    def merge(cls, histograms: Iterable["SparseHistogram"]) -> "SparseHistogram":
        histograms = list(histograms)
        if not histograms:
            raise ValueError("nothing to merge")
        drop_bits = {h.drop_bits for h in histograms}
        if len(drop_bits) != 1:
            raise ValueError("histograms with different drop_bits cannot be merged")
        bins, inverse = np.unique(np.concatenate([h.bins for h in histograms]), return_inverse=True)
        positives = np.bincount(inverse, np.concatenate([h.positives for h in histograms]), bins.size)
        negatives = np.bincount(inverse, np.concatenate([h.negatives for h in histograms]), bins.size)
        return cls(bins.astype(np.uint32), positives.astype(np.int64), negatives.astype(np.int64), drop_bits.pop())

    @property
    def n_positive(self) -> int:
        return int(self.positives.sum(dtype=np.int64))

    @property
    def n_negative(self) -> int:
        return int(self.negatives.sum(dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.bins.nbytes + self.positives.nbytes + self.negatives.nbytes

    def _descending(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.bins.size == 0:
            raise ValueError("the histogram is empty")
        order = slice(None, None, -1)
        tp = np.cumsum(self.positives[order], dtype=np.int64)
        fp = np.cumsum(self.negatives[order], dtype=np.int64)
        return tp, fp, bin_lower_edge(self.bins[order], self.drop_bits)

    def summary(self) -> CurveSummary:
        """AP and best Dice of these voxels alone (NaN when none is anomalous)."""
        tp, fp, thresholds = self._descending()
        return summarise(tp, fp, thresholds, self.n_positive, self.n_negative)

    def curve(self) -> PRCurve:
        tp, fp, thresholds = self._descending()
        return pr_curve(tp, fp, thresholds, self.n_positive)

    def counts_at_or_above(self, threshold: float) -> tuple[int, int]:
        """(anomalous, normal) voxels whose bin is at or above the bin of ``threshold``.

        For a threshold that is a bin's lower edge (as every threshold a histogram reports), this is
        exactly ``score >= threshold``.
        """
        first = int(bin_index(np.array([threshold], np.float32), self.drop_bits)[0])
        start = int(np.searchsorted(self.bins, first, side="left"))
        return int(self.positives[start:].sum(dtype=np.int64)), int(self.negatives[start:].sum(dtype=np.int64))

    def dice_at(self, threshold: float) -> float:
        """2·TP / (predicted + anomalous) for ``score >= threshold``; NaN when nothing is anomalous
        (a lesion-free volume has no Dice: count its predicted voxels instead)."""
        tp, fp = self.counts_at_or_above(threshold)
        if self.n_positive == 0:
            return float("nan")
        return 2.0 * tp / (tp + fp + self.n_positive)
