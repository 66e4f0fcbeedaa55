"""Intensity bias on one tissue class: paper eq. (2), for one channel.

Eq. (2):  x_sc = clip(x_text + sign·α_bias·m·m_tissue, 0, 1),
where m_tissue is the indicator of one tissue cluster k (nearest of the plans' k-Means centroids),
smoothed with a Gaussian of σ = ``tissue_sigma``, and k is chosen with probability proportional to
its pixel count inside the mask support. The effective strength is the shift that survives the
clipping and the masking: α_bias_eff = max |x_sc − x_text|.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage


def quantise(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid of every pixel (centroids ascending; ties go to the lower)."""
    centroids = np.asarray(centroids, dtype=np.float64)
    midpoints = (centroids[1:] + centroids[:-1]) / 2.0
    return np.searchsorted(midpoints, x, side="left").astype(np.int64)


def choose_cluster(labels: np.ndarray, support: np.ndarray, n_clusters: int, rng: np.random.Generator) -> int:
    """Cluster k with probability ∝ its pixel count inside ``support`` (which must not be empty)."""
    counts = np.bincount(labels[support], minlength=n_clusters).astype(np.float64)
    if counts.sum() == 0:
        raise ValueError("cannot choose a tissue cluster: the mask support is empty")
    return int(rng.choice(n_clusters, p=counts / counts.sum()))


def tissue_mask(labels: np.ndarray, cluster: int, sigma: float) -> np.ndarray:
    """m_tissue: 1 on pixels of ``cluster``, smoothed with a Gaussian of ``sigma`` px (float32)."""
    indicator = (labels == cluster).astype(np.float32)
    if sigma <= 0:
        return indicator
    return ndimage.gaussian_filter(indicator, sigma=sigma)


def apply_bias(x_text: np.ndarray, mask: np.ndarray, tissue: np.ndarray | float, sign: float,
               alpha_bias: float) -> np.ndarray:
    """Eq. (2): x_sc = clip(x_text + sign·α_bias·m·m_tissue, 0, 1)."""
    shift = (sign * alpha_bias) * mask * tissue
    return np.clip(x_text + shift.astype(x_text.dtype, copy=False), 0.0, 1.0)


def effective_bias(x_sc: np.ndarray, x_text: np.ndarray) -> float:
    """α_bias_eff = max |x_sc − x_text|: the bias that survived clipping and masking."""
    return float(np.max(np.abs(x_sc - x_text))) if x_sc.size else 0.0
