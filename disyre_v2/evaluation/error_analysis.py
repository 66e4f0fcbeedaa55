"""Where a model's errors are: the false positives by distance to the brain boundary and by axial
position, the score distributions of lesion and lesion-free voxels, and volume-level detection.

The highest-scoring lesion-free voxels are a model's false positives at any useful threshold. Their
share in each band (say, the outermost 2 mm of the brain) is compared with the band's share of the
lesion-free brain: a model whose errors are spread evenly has a ratio near 1 in every band; a model
that flags the brain rim has a large ratio in the first band. Everything here is computed from the
per-case sparse histograms of one evaluation pass (no second read of any map); a threshold "top q of
the lesion-free voxels" is resolved to histogram bins, so ties at the bin edge are counted whole.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from disyre_v2.evaluation.pooled_curve import bin_lower_edge
from disyre_v2.evaluation.sparse_histogram import SparseHistogram
from disyre_v2.imageio.geometry import Geometry, axial_axis

# Upper edges (mm) of the distance bands; the last band is open. The first band is "the rim":
# voxels whose centre lies within 2 mm of the nearest non-brain voxel centre.
DISTANCE_EDGES_MM = (2.0, 4.0, 8.0, 16.0)
RIM_BAND = 0
N_POSITION_BANDS = 10  # deciles of the brain's axial extent, inferior to superior
TOP_FRACTIONS = (0.001, 0.01)  # the top 0.1 % and 1 % of the lesion-free voxels
QUANTILES = (0.5, 0.9, 0.99, 0.999)


def distance_band_names() -> list[str]:
    edges = (0.0,) + DISTANCE_EDGES_MM
    names = [f"{lo:g}-{hi:g} mm" for lo, hi in zip(edges[:-1], edges[1:])]
    return names + [f"> {DISTANCE_EDGES_MM[-1]:g} mm"]


def position_band_names() -> list[str]:
    step = 100 // N_POSITION_BANDS
    return [f"{i * step}-{(i + 1) * step} %" for i in range(N_POSITION_BANDS)]


def distance_to_boundary_mm(brain: np.ndarray, spacing_zyx: tuple[float, float, float]) -> np.ndarray:
    """Distance (mm) from each brain voxel's centre to the nearest non-brain voxel centre (0 outside).

    The grid's border counts as outside: a brain cut by the field of view has its rim there too.
    """
    padded = np.pad(np.asarray(brain, bool), 1, constant_values=False)
    distance = ndimage.distance_transform_edt(padded, sampling=spacing_zyx)
    return distance[1:-1, 1:-1, 1:-1]


def band_indices(brain: np.ndarray, geometry: Geometry) -> tuple[np.ndarray, np.ndarray]:
    """Distance band and axial-position band of every brain voxel (flat, in ``brain[brain]`` order)."""
    spacing_zyx = tuple(reversed(geometry.spacing))
    distance = distance_to_boundary_mm(brain, spacing_zyx)[brain]
    distance_band = np.searchsorted(np.asarray(DISTANCE_EDGES_MM), distance, side="left")
    axis, sign = axial_axis(geometry)
    index = np.nonzero(brain)[axis]
    low, high = index.min(), index.max()
    relative = (index - low + 0.5) / (high - low + 1)  # in (0, 1), slices counted whole
    if sign < 0:
        relative = 1.0 - relative
    position_band = np.minimum((relative * N_POSITION_BANDS).astype(int), N_POSITION_BANDS - 1)
    return distance_band, position_band


def _negative_histogram(scores: np.ndarray, drop_bits: int) -> SparseHistogram:
    if scores.size == 0:
        empty = np.zeros(0, np.int32)
        return SparseHistogram(np.zeros(0, np.uint32), empty, empty, drop_bits)
    return SparseHistogram.from_scores(scores, np.zeros(scores.size, bool), drop_bits)


@dataclass
class CaseBands:
    """One case's lesion-free brain voxels, as sparse histograms per distance and position band."""

    distance: list[SparseHistogram]
    position: list[SparseHistogram]

    @classmethod
    def measure(cls, score_map: np.ndarray, label: np.ndarray, brain: np.ndarray, geometry: Geometry,
                drop_bits: int) -> "CaseBands":
        distance_band, position_band = band_indices(brain, geometry)
        healthy = ~label[brain]
        scores = score_map[brain]
        distance = [_negative_histogram(scores[healthy & (distance_band == b)], drop_bits)
                    for b in range(len(DISTANCE_EDGES_MM) + 1)]
        position = [_negative_histogram(scores[healthy & (position_band == b)], drop_bits)
                    for b in range(N_POSITION_BANDS)]
        return cls(distance, position)


def count_at_or_above(histogram: SparseHistogram, threshold: float, which: str = "negatives") -> int:
    if histogram.bins.size == 0:
        return 0
    positives, negatives = histogram.counts_at_or_above(threshold)
    return negatives if which == "negatives" else positives


def top_threshold(histogram: SparseHistogram, fraction: float, which: str = "negatives") -> float:
    """The lower edge of the highest bin at which ``score >= edge`` holds at least ``fraction`` of the
    ``which`` voxels (ties in that bin counted whole); inf when there are none."""
    counts = histogram.negatives if which == "negatives" else histogram.positives
    total = int(counts.sum())
    if total == 0:
        return math.inf
    from_top = np.cumsum(counts[::-1])
    first = int(np.searchsorted(from_top, max(fraction * total, 1), side="left"))
    return float(bin_lower_edge(histogram.bins[::-1][first:first + 1], histogram.drop_bits)[0])


def quantile(histogram: SparseHistogram, q: float, which: str) -> float | None:
    """The q-quantile of the ``which`` voxels' scores, to the histogram's bin resolution."""
    counts = histogram.negatives if which == "negatives" else histogram.positives
    total = int(counts.sum())
    if total == 0:
        return None
    cumulative = np.cumsum(counts)
    index = int(np.searchsorted(cumulative, q * total, side="left"))
    return float(bin_lower_edge(histogram.bins[min(index, histogram.bins.size - 1):][:1], histogram.drop_bits)[0])


def _mean_score(histograms: list[SparseHistogram]) -> float | None:
    """Mean of the lesion-free scores held by ``histograms`` (bin lower edges: 2^-13 relative)."""
    total = sum(h.n_negative for h in histograms)
    if total == 0:
        return None
    return float(sum(np.dot(bin_lower_edge(h.bins, h.drop_bits).astype(np.float64), h.negatives)
                     for h in histograms if h.bins.size) / total)


def _band_table(per_band: list[list[SparseHistogram]], names: list[str], thresholds: dict[float, float]) -> list[dict]:
    """Rows of band, share of the lesion-free brain, its mean score, share of each top fraction and the
    ratio of that share to the brain share."""
    totals = np.array([sum(h.n_negative for h in band) for band in per_band], float)
    rows = [{"band": name, "brain_share": float(total / max(totals.sum(), 1)), "healthy_mean": _mean_score(band)}
            for name, total, band in zip(names, totals, per_band)]
    for fraction, threshold in thresholds.items():
        counts = np.array([sum(count_at_or_above(h, threshold) for h in band) for band in per_band], float)
        key = _fraction_key(fraction)
        for row, count in zip(rows, counts):
            row[f"{key}_share"] = float(count / counts.sum()) if counts.sum() else None
            row[f"{key}_ratio"] = (row[f"{key}_share"] / row["brain_share"]
                                   if row[f"{key}_share"] is not None and row["brain_share"] > 0 else None)
    return rows


def _fraction_key(fraction: float) -> str:
    return f"top_{fraction * 100:g}pct"


def false_positive_locations(healthy: SparseHistogram, bands: list[CaseBands], case_ids: list[str],
                             case_histograms: list[SparseHistogram]) -> dict:
    """Shares of the top-scoring lesion-free voxels per band, and the cases that hold them."""
    thresholds = {f: top_threshold(healthy, f) for f in TOP_FRACTIONS}
    n_distance = len(DISTANCE_EDGES_MM) + 1
    distance = _band_table([[b.distance[i] for b in bands] for i in range(n_distance)], distance_band_names(), thresholds)
    position = _band_table([[b.position[i] for b in bands] for i in range(N_POSITION_BANDS)], position_band_names(),
                           thresholds)
    first = thresholds[TOP_FRACTIONS[0]]
    per_case = sorted(((count_at_or_above(h, first), case) for h, case in zip(case_histograms, case_ids)), reverse=True)
    total = sum(count for count, _ in per_case)
    key = _fraction_key(TOP_FRACTIONS[0])
    return {
        "definition": "lesion-free brain voxels pooled over all cases; top q = the highest-scoring fraction q of "
                      "them (ties at the threshold counted whole); rim = within 2 mm of the nearest non-brain "
                      "voxel; position = decile of the brain's inferior-superior extent",
        "thresholds": {_fraction_key(f): (t if math.isfinite(t) else None) for f, t in thresholds.items()},
        "by_distance_to_boundary": distance,
        "by_axial_position": position,
        "rim_share": {k: distance[RIM_BAND][f"{_fraction_key(f)}_share"] for f, k in
                      ((f, _fraction_key(f)) for f in TOP_FRACTIONS)},
        "rim_brain_share": distance[RIM_BAND]["brain_share"],
        "rim_ratio": distance[RIM_BAND][f"{key}_ratio"],
        "cases_holding_top": [{"case_id": case, "share": count / total if total else None}
                              for count, case in per_case[:5] if count > 0],
    }


def score_distribution(histogram: SparseHistogram, healthy_thresholds: dict[str, float]) -> dict:
    """Quantiles of lesion and lesion-free scores, and the lesion recall above healthy quantiles."""
    result = {"n_lesion": histogram.n_positive, "n_healthy": histogram.n_negative}
    for which, name in (("positives", "lesion"), ("negatives", "healthy")):
        result[f"{name}_quantiles"] = {f"{q * 100:g}": quantile(histogram, q, which) for q in QUANTILES}
    recall = {}
    for key, threshold in healthy_thresholds.items():
        recall[key] = (count_at_or_above(histogram, threshold, "positives") / histogram.n_positive
                       if histogram.n_positive and math.isfinite(threshold) else None)
    result["lesion_recall_at_healthy_top"] = recall
    return result


def score_distributions(groups: dict[str, SparseHistogram], healthy: SparseHistogram) -> dict:
    """Per group (all, each kind): lesion and lesion-free quantiles; recall at the pooled healthy top 0.1 %/1 %."""
    thresholds = {_fraction_key(f): top_threshold(healthy, f) for f in TOP_FRACTIONS}
    return {name: score_distribution(histogram, thresholds) for name, histogram in groups.items()}


def volume_detection(volume_scores: list[float], anomalous: list[bool], kinds: list[str | None]) -> dict:
    """Per group: how the volume scores of lesioned cases compare with those of the lesion-free cases."""
    scores = np.asarray(volume_scores, float)
    anomalous = np.asarray(anomalous, bool)
    free = scores[~anomalous]
    groups = {"all lesioned": anomalous}
    for kind in sorted({k for k in kinds if k is not None}):
        members = np.array([k == kind for k in kinds]) & anomalous
        if members.any():
            groups[kind] = members
    result = {"lesion_free": {"n": int(free.size), "median": float(np.median(free)) if free.size else None,
                              "max": float(free.max()) if free.size else None}}
    for name, members in groups.items():
        chosen = scores[members]
        if chosen.size == 0:
            continue
        result[name] = {
            "n": int(chosen.size), "median": float(np.median(chosen)), "min": float(chosen.min()),
            # A lesioned volume is "detected" at zero false alarms when it outscores every lesion-free one.
            "above_every_lesion_free": float(np.mean(chosen > free.max())) if free.size else None,
        }
    return result


def healthy_histogram(histograms: list[SparseHistogram]) -> SparseHistogram:
    """The lesion-free voxels of every case, merged."""
    merged = SparseHistogram.merge(histograms)
    return SparseHistogram(merged.bins, np.zeros_like(merged.positives), merged.negatives, merged.drop_bits)

