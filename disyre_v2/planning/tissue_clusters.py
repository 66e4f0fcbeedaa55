"""Tissue clusters for the intensity-bias anomaly (paper eq. 2, method_numbers.md ("Anomaly synthesis")).

K = 5 k-Means centroids per channel, fitted on normalised brain intensities pooled over the
training cases (the reference implementation ships hard-coded centroids; they are fitted here).
"""
from __future__ import annotations

import logging
import warnings

import numpy as np
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

from disyre_v2.planning.defaults import KMEANS_N_INIT, NUM_TISSUE_CLUSTERS

logger = logging.getLogger(__name__)


def fit_tissue_clusters(values: np.ndarray, num_clusters: int = NUM_TISSUE_CLUSTERS, seed: int = 0,
                        n_init: int = KMEANS_N_INIT, channel_name: str = "") -> dict:
    """1-D k-Means of ``values``: centroids sorted ascending and the share of values nearest each.

    Returns ``{"centroids": [K floats], "voxel_shares": [K floats summing to 1]}``.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size < num_clusters:
        raise ValueError(
            f"{values.size} brain voxel(s) sampled for channel {channel_name or '?'}: k-Means with K = "
            f"{num_clusters} needs at least as many. The brain masks are (almost) empty."
        )
    # One thread: on 1-D data OpenMP start-up costs far more than it saves (100x on a busy machine).
    with warnings.catch_warnings(record=True) as caught, threadpool_limits(limits=1):
        warnings.simplefilter("always", ConvergenceWarning)
        model = KMeans(n_clusters=num_clusters, n_init=n_init, random_state=seed).fit(values[:, None])
    if any(issubclass(w.category, ConvergenceWarning) for w in caught):
        logger.warning(
            "Channel %s: fewer than %d distinct intensities among the sampled brain voxels; some tissue "
            "centroids coincide (the intensity-bias anomaly then has fewer distinct clusters).",
            channel_name or "?", num_clusters)
    centroids = model.cluster_centers_[:, 0]
    order = np.argsort(centroids, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(num_clusters)
    counts = np.bincount(rank[model.labels_], minlength=num_clusters)
    return {
        "centroids": [float(c) for c in centroids[order]],
        "voxel_shares": [float(n) / values.size for n in counts],
    }
