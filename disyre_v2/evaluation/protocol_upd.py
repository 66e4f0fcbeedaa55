"""The UPD benchmark's voxel protocol (Lagogiannis et al., IEEE TMI 2024), for comparison.

Per volume: axial slices 15–134 (array axis 0, i.e. the third NIfTI axis, of the 155-slice SRI24
grid), only those that hold brain; each slice centre-cropped to a square and resized to 128 × 128
(linear, with the Gaussian anti-aliasing of scikit-image's ``resize``); the label resized the same
way as 0/1 floats and kept where > 0.4. Every pixel of the kept slices is pooled, background
included. AP is exact over those pixels; [Dice] is the best of 100 thresholds spaced linearly from
the largest to the smallest pooled score, a pixel anomalous when its score is > threshold. The
counts come from the bounded-memory histogram (the bin holding a threshold counts as below it: a
shift of at most 2^-13 relative), so a BraTS-sized set needs no more memory than the exact protocol.
"""
from __future__ import annotations

import logging

import numpy as np
from scipy import ndimage

from disyre_v2.evaluation.pooled_curve import DEFAULT_DROP_BITS, PooledPRCurve, best_dice_at_thresholds

logger = logging.getLogger(__name__)

SLICE_RANGE = (15, 135)  # slices 15..134
SIZE = 128
N_THRESHOLDS = 100
LABEL_LEVEL = 0.4


def centre_square(volume: np.ndarray) -> np.ndarray:
    """Crop the two in-plane axes of a (Z, Y, X) array to the shorter side, centred."""
    h, w = volume.shape[1:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return volume[:, top:top + side, left:left + side]


def resize_slices(volume: np.ndarray, size: int = SIZE) -> np.ndarray:
    """Resize each (Y, X) slice to size × size as ``skimage.transform.resize(order=1)`` does:
    Gaussian anti-aliasing (σ = (factor − 1)/2 when shrinking), linear interpolation on pixel
    centres, reflect at the borders, output clipped to the input's range."""
    volume = np.asarray(volume, np.float32)
    factors = np.array([1.0, volume.shape[1] / size, volume.shape[2] / size])
    sigma = np.maximum(0.0, (factors - 1.0) / 2.0)
    filtered = ndimage.gaussian_filter(volume, sigma, mode="mirror") if (sigma > 0).any() else volume
    out = ndimage.zoom(filtered, 1.0 / factors, order=1, mode="mirror", grid_mode=True)
    return np.clip(out, volume.min(), volume.max())


def upd_slices(score_map: np.ndarray, label: np.ndarray, brain: np.ndarray,
               slice_range: tuple[int, int] = SLICE_RANGE, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """(scores, anomalous) of shape (n_slices, size, size) as the UPD benchmark sees one volume."""
    start, stop = slice_range
    z = np.arange(start, min(stop, score_map.shape[0]))
    z = z[brain[z].any(axis=(1, 2))] if z.size else z
    if z.size == 0:
        return np.zeros((0, size, size), np.float32), np.zeros((0, size, size), bool)
    scores = resize_slices(centre_square(score_map[z]), size)
    labels = resize_slices(centre_square((label[z] > 0).astype(np.float32)), size) > LABEL_LEVEL
    return scores, labels


class UpdProtocol:
    name = "upd"

    def __init__(self, drop_bits: int = DEFAULT_DROP_BITS, slice_range: tuple[int, int] = SLICE_RANGE,
                 size: int = SIZE, n_thresholds: int = N_THRESHOLDS):
        self.curve = PooledPRCurve(drop_bits)
        self.slice_range = tuple(slice_range)
        self.size = int(size)
        self.n_thresholds = int(n_thresholds)
        self.low, self.high = np.inf, -np.inf
        self.n_slices = 0
        self._warned_short = False

    def add(self, case_id: str, score_map: np.ndarray, label: np.ndarray, brain: np.ndarray) -> None:
        if score_map.shape[0] < self.slice_range[1] and not self._warned_short:
            self._warned_short = True  # once: every case of a dataset usually shares the grid
            logger.warning("%s has %d axial slices; the upd protocol takes slices %d-%d of the 155-slice SRI24 "
                           "grid, so only %d-%d are used.", case_id, score_map.shape[0], self.slice_range[0],
                           self.slice_range[1] - 1, self.slice_range[0], score_map.shape[0] - 1)
        scores, labels = upd_slices(score_map, label, brain, self.slice_range, self.size)
        if scores.size == 0:
            logger.warning("%s contributes no slice to the upd protocol (no brain in slices %d-%d).",
                           case_id, self.slice_range[0], self.slice_range[1] - 1)
            return
        self.curve.add(scores, labels)
        self.low, self.high = min(self.low, float(scores.min())), max(self.high, float(scores.max()))
        self.n_slices += scores.shape[0]

    def result(self) -> dict:
        if self.n_slices == 0:
            raise ValueError("no slice of any case falls in the upd protocol's slice range")
        summary = self.curve.summary()
        thresholds = np.linspace(self.high, self.low, self.n_thresholds)
        tp, fp, _ = self.curve.counts_above(thresholds)
        dice, threshold = best_dice_at_thresholds(tp, fp, summary.n_positive, thresholds)
        return {
            "average_precision": summary.average_precision, "best_dice": dice, "best_threshold": threshold,
            "n_positive": summary.n_positive, "n_negative": summary.n_negative,
            "protocol": "upd",
            "voxels": f"all pixels of axial slices {self.slice_range[0]}-{self.slice_range[1] - 1} holding brain, "
                      f"centre-cropped and resized to {self.size}x{self.size}",
            "thresholds": f"{self.n_thresholds} linearly spaced from the highest to the lowest pooled score",
            "rule": "score > threshold", "n_slices": self.n_slices,
        }
