"""Assemble summary.json (documentation/reference/summary_format.md) from the per-case results."""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np

from disyre_v2.evaluation.case_result import CaseResult
from disyre_v2.evaluation.error_analysis import (
    false_positive_locations, healthy_histogram, score_distributions, volume_detection)
from disyre_v2.evaluation.ranking import ranking_metrics
from disyre_v2.evaluation.sparse_histogram import SparseHistogram

SUMMARY_VERSION = 2


def json_safe(value):
    """NaN/inf become None (JSON has no NaN); numpy scalars and arrays become Python values."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def _mean(values: Iterable[float]) -> float | None:
    values = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(values)) if values else None


def mean_per_case(per_case: list[dict]) -> dict:
    """Means over the cases with a lesion (a lesion-free case has no AP or Dice)."""
    anomalous = [c for c in per_case if c["anomalous"]]
    return {"n_cases": len(anomalous),
            "dice": _mean(c["dice"] for c in anomalous),
            "average_precision": _mean(c["average_precision"] for c in anomalous)}


def volume_level(results: list[CaseResult], score_source: str) -> dict:
    metrics = ranking_metrics([r.volume_score for r in results], [r.anomalous for r in results]).to_dict()
    metrics["score"] = score_source
    return metrics


def slice_level(results: list[CaseResult], reduction: str) -> dict:
    scores = np.concatenate([r.slice_scores for r in results])
    anomalous = np.concatenate([r.slice_anomalous for r in results])
    metrics = ranking_metrics(scores, anomalous).to_dict()
    metrics["slice_score"] = {"max": "maximum of the brain voxels of the axial slice",
                              "top1": "mean of the top 1 % of the brain voxels of the axial slice"}[reduction]
    metrics["slices"] = "axial slices (array axis 0) holding brain; anomalous if a brain voxel is labelled"
    return metrics


def per_kind(results: list[CaseResult], per_case: list[dict], threshold: float) -> dict:
    """Pooled and per-case metrics of each lesion kind; volume-level against the lesion-free cases."""
    lesion_free = [r for r in results if not r.anomalous]
    kinds = {}
    for kind in sorted({r.kind for r in results}):
        members = [r for r in results if r.kind == kind]
        ids = {r.case_id for r in members}
        merged = SparseHistogram.merge(r.histogram for r in members)
        curve = merged.summary()
        tp, fp = merged.counts_at_or_above(threshold) if math.isfinite(threshold) else (0, 0)
        ranked = members + [r for r in lesion_free if r.case_id not in ids]
        cases = [c for c in per_case if c["case_id"] in ids]
        kinds[kind] = {
            "n_cases": len(members),
            "n_anomalous_cases": sum(r.anomalous for r in members),
            "average_precision": curve.average_precision,
            "best_dice": curve.best_dice,
            "best_threshold": curve.best_threshold,
            "dice_at_pooled_threshold": 2.0 * tp / (tp + fp + merged.n_positive) if merged.n_positive else None,
            "predicted_fraction_at_pooled_threshold":
                (tp + fp) / max(merged.n_positive + merged.n_negative, 1) if math.isfinite(threshold) else None,
            "mean_per_case": mean_per_case(cases),
            "volume_level": ranking_metrics([r.volume_score for r in ranked], [r.anomalous for r in ranked]).to_dict(),
        }
    return kinds


def error_analysis(results: list[CaseResult]) -> dict:
    """Where the false positives lie, how lesion and lesion-free scores are distributed (all cases and
    per kind), and how lesioned volumes rank against lesion-free ones."""
    histograms = [r.histogram for r in results]
    healthy = healthy_histogram(histograms)
    groups = {"all": SparseHistogram.merge(histograms)}
    for kind in sorted({r.kind for r in results if r.kind is not None}):
        groups[kind] = SparseHistogram.merge(r.histogram for r in results if r.kind == kind)
    return {
        "false_positives": false_positive_locations(healthy, [r.bands for r in results],
                                                    [r.case_id for r in results], histograms),
        "score_distributions": score_distributions(groups, healthy),
        "volume_detection": volume_detection([r.volume_score for r in results], [r.anomalous for r in results],
                                             [r.kind for r in results]),
    }


def build_summary(*, protocol: str, protocol_result: dict, exact_result: dict, results: list[CaseResult],
                  per_case: list[dict], slice_reduction: str, volume_score_source: str, folders: dict,
                  settings: dict, with_kinds: bool) -> dict:
    summary = {
        "summary_version": SUMMARY_VERSION,
        "protocol": protocol,
        "n_cases": len(results),
        "case_ids": [r.case_id for r in results],
        "pooled": protocol_result,
    }
    if protocol != "exact":
        summary["pooled_exact"] = exact_result
    summary.update({
        "per_case_threshold": exact_result["best_threshold"],
        "mean_per_case": mean_per_case(per_case),
        "volume_level": volume_level(results, volume_score_source),
        "slice_level": slice_level(results, slice_reduction),
    })
    if with_kinds:
        summary["per_kind"] = per_kind(results, per_case, exact_result["best_threshold"])
    summary["error_analysis"] = error_analysis(results)
    summary["per_case"] = per_case
    summary["folders"] = folders
    summary["settings"] = settings
    return json_safe(summary)
