"""Precision-recall statistics over voxels pooled across many volumes, in bounded memory.

Scores are binned on their float32 bit pattern (an order-preserving integer key with the lowest
``drop_bits`` mantissa bits dropped), positives and negatives counted per bin, one volume at a time.
Memory is two histograms (2^(32 − drop_bits) bins), whatever the number of volumes: a BraTS-sized
test set (369 × 240 × 240 × 155) never has all voxels in memory. With the default 10 dropped bits,
scores that differ by less than about 2^-13 relative fall into one bin, which changes AP and
[Dice] by far less than 1e-3 (tested against scikit-learn).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_DROP_BITS = 10


def float_order_key(values: np.ndarray) -> np.ndarray:
    """uint32 keys whose integer order is the order of the float32 values (negatives included)."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    negative = (bits >> 31).astype(bool)
    return np.where(negative, ~bits, bits | np.uint32(0x80000000))


def key_to_float(keys: np.ndarray) -> np.ndarray:
    """Inverse of :func:`float_order_key`."""
    keys = np.asarray(keys).astype(np.uint32)
    positive = (keys >> 31).astype(bool)
    bits = np.where(positive, keys & np.uint32(0x7FFFFFFF), ~keys)
    return bits.view(np.float32)


def bin_index(values: np.ndarray, drop_bits: int = DEFAULT_DROP_BITS) -> np.ndarray:
    """The histogram bin of each float32 value: its order key without the lowest ``drop_bits`` bits."""
    return float_order_key(values) >> np.uint32(drop_bits)


def bin_lower_edge(bins: np.ndarray, drop_bits: int = DEFAULT_DROP_BITS) -> np.ndarray:
    """The smallest float32 value of each bin: ``score >= edge`` selects exactly that bin and those above."""
    return key_to_float(np.asarray(bins, np.uint64) << np.uint64(drop_bits))


@dataclass
class PRCurve:
    """Precision and recall at descending thresholds (score >= threshold is anomalous)."""

    precision: np.ndarray
    recall: np.ndarray
    thresholds: np.ndarray


@dataclass
class CurveSummary:
    average_precision: float
    best_dice: float
    best_threshold: float
    n_positive: int
    n_negative: int


def checked_scores(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat float32 scores and bool labels (> 0) of one size, the scores finite."""
    scores = np.asarray(scores, np.float32).ravel()
    labels = np.asarray(labels).ravel() > 0
    if scores.shape != labels.shape:
        raise ValueError(f"scores and labels differ in size: {scores.shape} vs {labels.shape}")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or infinite values")
    return scores, labels


def pr_curve(tp: np.ndarray, fp: np.ndarray, thresholds: np.ndarray, n_pos: int) -> PRCurve:
    """Precision and recall from cumulative counts at descending thresholds."""
    return PRCurve(tp / np.maximum(tp + fp, 1), tp / max(n_pos, 1), thresholds)


class PooledPRCurve:
    """Accumulate (score, label) pairs volume by volume; then AP and the best Dice over thresholds."""

    def __init__(self, drop_bits: int = DEFAULT_DROP_BITS):
        if not 0 <= drop_bits <= 24:
            raise ValueError("drop_bits must lie in 0..24")
        self.drop_bits = int(drop_bits)
        size = 1 << (32 - self.drop_bits)
        self.positives = np.zeros(size, np.int64)
        self.negatives = np.zeros(size, np.int64)

    def add(self, scores: np.ndarray, labels: np.ndarray) -> None:
        scores, labels = checked_scores(scores, labels)
        bins = bin_index(scores, self.drop_bits)
        self.positives += np.bincount(bins[labels], minlength=self.positives.size)
        self.negatives += np.bincount(bins[~labels], minlength=self.negatives.size)

    def add_histogram(self, bins: np.ndarray, positives: np.ndarray, negatives: np.ndarray) -> None:
        """Add counts already binned with the same ``drop_bits`` (``bins`` unique, as from np.unique)."""
        bins = np.asarray(bins, np.int64)
        if bins.size and (bins.min() < 0 or bins.max() >= self.positives.size):
            raise ValueError(f"bin ids must lie in 0..{self.positives.size - 1}")
        if np.unique(bins).size != bins.size:
            raise ValueError("bin ids must be unique")
        self.positives[bins] += np.asarray(positives, np.int64)
        self.negatives[bins] += np.asarray(negatives, np.int64)

    def _descending(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        occupied = np.flatnonzero((self.positives + self.negatives) > 0)[::-1]  # descending scores
        if occupied.size == 0:
            raise ValueError("no voxel was added")
        tp = np.cumsum(self.positives[occupied])
        fp = np.cumsum(self.negatives[occupied])
        return tp, fp, bin_lower_edge(occupied, self.drop_bits)

    def summary(self) -> CurveSummary:
        tp, fp, thresholds = self._descending()
        return summarise(tp, fp, thresholds, int(self.positives.sum()), int(self.negatives.sum()))

    def curve(self) -> PRCurve:
        """The precision-recall curve, one point per occupied bin (for plots)."""
        tp, fp, thresholds = self._descending()
        return pr_curve(tp, fp, thresholds, int(self.positives.sum()))

    def counts_above(self, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(tp, fp, effective thresholds) for ``score > t`` at each threshold t, resolved to bins.

        The bin holding t itself is left out, so the counts are exactly those of
        ``score >= effective threshold`` (the lower edge of the next bin, within 2^-(23 - drop_bits)
        relative of t): a fixed-threshold protocol thereby runs in bounded memory too.
        """
        thresholds = np.asarray(thresholds, np.float32)
        next_bin = bin_index(thresholds, self.drop_bits).astype(np.int64) + 1
        # Counts at or above each bin: reverse cumulative sums, with a zero past the last bin.
        tp_from = np.concatenate([np.cumsum(self.positives[::-1])[::-1], [0]])
        fp_from = np.concatenate([np.cumsum(self.negatives[::-1])[::-1], [0]])
        next_bin = np.minimum(next_bin, self.positives.size)
        edges = bin_lower_edge(np.minimum(next_bin, self.positives.size - 1), self.drop_bits)
        return tp_from[next_bin], fp_from[next_bin], edges


def summarise(tp: np.ndarray, fp: np.ndarray, thresholds: np.ndarray, n_pos: int, n_neg: int) -> CurveSummary:
    """AP (step-wise, as scikit-learn: Σ (R_n − R_{n−1}) P_n) and max 2PR/(P+R) from cumulative counts
    at descending thresholds (score >= threshold predicted anomalous)."""
    if n_pos == 0:
        return CurveSummary(float("nan"), float("nan"), float("nan"), 0, n_neg)
    precision = tp / np.maximum(tp + fp, 1)
    recall = tp / n_pos
    ap = float(np.sum(np.diff(np.concatenate([[0.0], recall])) * precision))
    dice = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    best = int(np.argmax(dice))
    return CurveSummary(ap, float(dice[best]), float(thresholds[best]), n_pos, n_neg)


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


def exact_summary(scores: np.ndarray, labels: np.ndarray) -> CurveSummary:
    """The same statistics from all values at once (every distinct score a threshold)."""
    scores = np.asarray(scores, np.float64).ravel()
    labels = np.asarray(labels).ravel() > 0
    order = np.argsort(-scores, kind="stable")
    sorted_scores, sorted_labels = scores[order], labels[order]
    last_of_value = np.r_[np.flatnonzero(np.diff(sorted_scores)), sorted_scores.size - 1]
    tp = np.cumsum(sorted_labels)[last_of_value]
    fp = (last_of_value + 1) - tp
    return summarise(tp, fp, sorted_scores[last_of_value], int(labels.sum()), int((~labels).sum()))
