"""The DISYRE papers' voxel protocol (method_numbers.md ("Evaluation")), for comparison with their published numbers.

Per volume, 10 000 voxels are drawn uniformly, with replacement, from the brain's bounding box
(background voxels of the box included, as the reference drew from its brain-cropped volumes). The
samples of all volumes are pooled: AP is exact on them (as torchmetrics' BinaryAveragePrecision
without thresholds, i.e. scikit-learn's), and [Dice] is the best of 200 thresholds spaced linearly
from the lowest sampled score to 1 (the reference's upper end is the largest label value, 1; here
it is the largest sampled score if that exceeds 1), a voxel anomalous when its score is > threshold.

The draw of a case depends only on (seed, case id), not on the order or number of cases.
"""
from __future__ import annotations

import zlib

import numpy as np

from disyre_v2.evaluation.pooled_curve import best_dice_at_thresholds, exact_summary

SAMPLES_PER_VOLUME = 10_000
N_THRESHOLDS = 200


def brain_bounding_box(brain: np.ndarray) -> tuple[slice, ...]:
    """The smallest box (one slice per axis) holding every brain voxel."""
    if not brain.any():
        raise ValueError("the brain mask is empty")
    box = []
    for axis in range(brain.ndim):
        present = np.flatnonzero(brain.any(axis=tuple(a for a in range(brain.ndim) if a != axis)))
        box.append(slice(int(present[0]), int(present[-1]) + 1))
    return tuple(box)


def case_generator(seed: int, case_id: str) -> np.random.Generator:
    """A generator for one case, from the global seed and a stable hash of the case id."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(case_id.encode("utf-8"))]))


def sample_box(score_map: np.ndarray, label: np.ndarray, brain: np.ndarray, rng: np.random.Generator,
               n: int = SAMPLES_PER_VOLUME) -> tuple[np.ndarray, np.ndarray]:
    """``n`` (score, anomalous) pairs drawn with replacement inside the brain's bounding box."""
    box = brain_bounding_box(brain)
    scores, labels = score_map[box].ravel(), label[box].ravel() > 0
    index = rng.integers(0, scores.size, size=n)
    return scores[index].astype(np.float32), labels[index]


def thresholds_for(scores: np.ndarray, n: int = N_THRESHOLDS) -> np.ndarray:
    low = float(scores.min())
    high = max(1.0, float(scores.max()))
    return np.linspace(low, high, n)


def counts_above(scores: np.ndarray, labels: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact (tp, fp) of ``score > t`` for each threshold t."""
    positive = np.sort(scores[labels].astype(np.float64))
    negative = np.sort(scores[~labels].astype(np.float64))
    tp = positive.size - np.searchsorted(positive, thresholds, side="right")
    fp = negative.size - np.searchsorted(negative, thresholds, side="right")
    return tp, fp


class DisyreProtocol:
    name = "disyre"

    def __init__(self, seed: int = 0, samples_per_volume: int = SAMPLES_PER_VOLUME, n_thresholds: int = N_THRESHOLDS):
        self.seed = int(seed)
        self.samples_per_volume = int(samples_per_volume)
        self.n_thresholds = int(n_thresholds)
        self._scores: list[np.ndarray] = []
        self._labels: list[np.ndarray] = []

    def add(self, case_id: str, score_map: np.ndarray, label: np.ndarray, brain: np.ndarray) -> None:
        scores, labels = sample_box(score_map, label, brain, case_generator(self.seed, case_id), self.samples_per_volume)
        self._scores.append(scores)
        self._labels.append(labels)

    def samples(self) -> tuple[np.ndarray, np.ndarray]:
        if not self._scores:
            raise ValueError("no case was added")
        return np.concatenate(self._scores), np.concatenate(self._labels)

    def result(self) -> dict:
        scores, labels = self.samples()
        ap = exact_summary(scores, labels).average_precision
        thresholds = thresholds_for(scores, self.n_thresholds)
        tp, fp = counts_above(scores, labels, thresholds)
        dice, threshold = best_dice_at_thresholds(tp, fp, int(labels.sum()), thresholds)
        return {
            "average_precision": ap, "best_dice": dice, "best_threshold": threshold,
            "n_positive": int(labels.sum()), "n_negative": int((~labels).sum()),
            "protocol": "disyre",
            "voxels": f"{self.samples_per_volume} voxels per volume drawn with replacement in the brain bounding box",
            "thresholds": f"{self.n_thresholds} linearly spaced from the lowest sampled score to max(1, highest)",
            "rule": "score > threshold", "seed": self.seed,
        }
