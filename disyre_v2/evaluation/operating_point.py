"""Metrics at one operating point: a fixed threshold, chosen without the test labels.

Voxel-wise, over brain voxels: Dice, precision and recall, pooled over the cases (sums of TP, FP, FN)
and per case. Lesion-wise: reference lesions and predicted lesions are 26-connected components (the
connectivity of ``disyre_v2.inference.lesions``); a reference lesion is *found* when at least one
positive voxel overlaps it, and a predicted component that overlaps no reference lesion is a false
positive. Lesion-wise recall = found / reference lesions (also per size band of the reference
lesion), precision = predicted components overlapping a lesion / predicted components, F1 their
harmonic mean. On lesion-free volumes the realised voxel false-positive rate is the share of their
brain voxels above the threshold (what the calibration targets).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from disyre_v2.evaluation.side_files import VOLUME_SCORES, read_flags
from disyre_v2.inference.lesions import find_lesions, label_components

# Reference-lesion size bands (ml) for lesion-wise sensitivity: [low, high).
SIZE_BANDS_ML = ((0.0, 0.1), (0.1, 1.0), (1.0, 10.0), (10.0, float("inf")))


def band_name(low: float, high: float) -> str:
    return f"{low:g}-{high:g} ml" if np.isfinite(high) else f">={low:g} ml"


@dataclass
class CaseAtThreshold:
    """Counts of one case at the threshold."""

    case_id: str
    tp: int
    fp: int
    fn: int
    brain_voxels: int
    reference_lesion_ml: list[float] = field(default_factory=list)
    reference_found: list[bool] = field(default_factory=list)
    predicted_components: int = 0
    false_positive_components: int = 0

    @property
    def lesion_free(self) -> bool:
        return self.tp + self.fn == 0

    def metrics(self) -> dict:
        return {"dice": _dice(self.tp, self.fp, self.fn), "precision": _ratio(self.tp, self.tp + self.fp),
                "recall": _ratio(self.tp, self.tp + self.fn), "positive_voxels": self.tp + self.fp,
                "reference_lesions": len(self.reference_found), "found_lesions": int(sum(self.reference_found)),
                "predicted_components": self.predicted_components,
                "false_positive_components": self.false_positive_components}


def measure_at_threshold(case_id: str, score_map: np.ndarray, label: np.ndarray, brain: np.ndarray, threshold: float,
                         voxel_ml: float, predicted: np.ndarray | None = None) -> CaseAtThreshold:
    """Counts of one case: positive = brain voxels scoring above ``threshold`` (or the given
    ``predicted`` mask, e.g. a written CASE_mask.nii.gz with its small lesions removed)."""
    brain = np.asarray(brain, bool)
    positive = (np.asarray(score_map) > threshold) & brain if predicted is None else np.asarray(predicted, bool) & brain
    lesion = (np.asarray(label) > 0) & brain
    tp = int(np.count_nonzero(positive & lesion))
    fp = int(np.count_nonzero(positive & ~lesion))
    fn = int(np.count_nonzero(~positive & lesion))
    reference, n_reference = label_components(lesion)
    predicted_labels, n_predicted = label_components(positive)
    sizes, found = [], []
    if n_reference:
        index = np.arange(1, n_reference + 1)
        sizes = (ndimage.sum_labels(lesion, reference, index) * voxel_ml).tolist()
        found = (ndimage.maximum(positive, reference, index) > 0).tolist()
    false_components = 0
    if n_predicted:
        overlaps = ndimage.maximum(lesion, predicted_labels, np.arange(1, n_predicted + 1))
        false_components = int(np.count_nonzero(np.asarray(overlaps) == 0))
    return CaseAtThreshold(case_id, tp, fp, fn, int(np.count_nonzero(brain)), [float(s) for s in sizes],
                           [bool(f) for f in found], int(n_predicted), false_components)


def summarise_at_threshold(cases: list[CaseAtThreshold], threshold: float, source: str,
                           flagged: dict[str, bool] | None = None) -> dict:
    """The operating point's block of summary.json."""
    tp = sum(c.tp for c in cases)
    fp = sum(c.fp for c in cases)
    fn = sum(c.fn for c in cases)
    sizes = [s for c in cases for s in c.reference_lesion_ml]
    found = [f for c in cases for f in c.reference_found]
    predicted = sum(c.predicted_components for c in cases)
    false_components = sum(c.false_positive_components for c in cases)
    lesion_recall = _ratio(sum(found), len(found))
    lesion_precision = _ratio(predicted - false_components, predicted)
    free = [c for c in cases if c.lesion_free]
    bands = {}
    for low, high in SIZE_BANDS_ML:
        in_band = [f for s, f in zip(sizes, found) if low <= s < high]
        bands[band_name(low, high)] = {"lesions": len(in_band), "found": int(sum(in_band)),
                                       "sensitivity": _ratio(sum(in_band), len(in_band))}
    summary = {
        "threshold": float(threshold), "threshold_source": source,
        "pooled": {"dice": _dice(tp, fp, fn), "precision": _ratio(tp, tp + fp), "recall": _ratio(tp, tp + fn)},
        "per_case_mean": {key: _mean([c.metrics()[key] for c in cases if not c.lesion_free])
                          for key in ("dice", "precision", "recall")},
        "lesion_wise": {
            "reference_lesions": len(found), "found": int(sum(found)), "sensitivity": lesion_recall,
            "sensitivity_by_size": bands, "predicted_components": predicted,
            "false_positive_components": false_components,
            "false_positive_components_per_volume": _ratio(false_components, len(cases)),
            "precision": lesion_precision,
            "f1": _harmonic(lesion_precision, lesion_recall)},
        "lesion_free_volumes": {
            "volumes": len(free),
            "voxel_false_positive_rate": _ratio(sum(c.fp for c in free), sum(c.brain_voxels for c in free)),
            "false_positive_components_per_volume": _ratio(sum(c.false_positive_components for c in free), len(free))},
        "cases": {c.case_id: c.metrics() for c in cases},
    }
    if flagged is not None:
        summary["flagged"] = flag_metrics(cases, flagged)
    return summary


def flag_metrics(cases: list[CaseAtThreshold], flagged: dict[str, bool]) -> dict:
    """Volume-level sensitivity (flagged among volumes with lesions) and specificity (not flagged
    among lesion-free volumes) of the ``flagged`` column."""
    with_lesion = [flagged[c.case_id] for c in cases if not c.lesion_free]
    free = [flagged[c.case_id] for c in cases if c.lesion_free]
    return {"volumes_with_lesions": len(with_lesion), "lesion_free_volumes": len(free),
            "sensitivity": _ratio(sum(with_lesion), len(with_lesion)),
            "specificity": _ratio(len(free) - sum(free), len(free))}


def _ratio(numerator: float, denominator: float) -> float | None:
    return float(numerator) / float(denominator) if denominator else None


def _dice(tp: int, fp: int, fn: int) -> float | None:
    return _ratio(2 * tp, 2 * tp + fp + fn)


def _harmonic(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    return 0.0 if a + b == 0 else 2 * a * b / (a + b)


def _mean(values: list[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


@dataclass(frozen=True)
class OperatingPoint:
    """The threshold to evaluate at, where it came from, and the lesion size below which predicted
    components were removed (``disyre_v2_predict --min_lesion_ml``)."""

    threshold: float
    source: str
    min_lesion_ml: float = 0.0

    def measure(self, case_id: str, loaded) -> CaseAtThreshold:
        predicted = None
        if self.min_lesion_ml > 0:
            predicted = find_lesions(loaded.score_map, loaded.brain, self.threshold, loaded.geometry,
                                     self.min_lesion_ml)[0].astype(bool)
        return measure_at_threshold(case_id, loaded.score_map, loaded.label, loaded.brain, self.threshold,
                                    loaded.voxel_ml, predicted)

    def summarise(self, cases: list[CaseAtThreshold], threshold_at_best: dict, kinds: dict[str, str] | None,
                  flags: dict[str, bool] | None) -> dict:
        usable = None
        if flags is not None:
            usable = flags if all(c.case_id in flags for c in cases) else None
        summary = summarise_at_threshold(cases, self.threshold, self.source, usable)
        summary["min_lesion_ml"] = self.min_lesion_ml
        summary["oracle"] = {"best_dice": threshold_at_best.get("best_dice"),
                             "best_threshold": threshold_at_best.get("best_threshold")}
        if kinds is not None:
            summary["per_kind"] = {}
            for kind in sorted(set(kinds.values())):
                members = [c for c in cases if kinds.get(c.case_id) == kind]
                block = summarise_at_threshold(members, self.threshold, self.source)
                summary["per_kind"][kind] = {"pooled": block["pooled"], "lesion_wise": block["lesion_wise"],
                                             "lesion_free_volumes": block["lesion_free_volumes"]}
        return summary


def operating_point_of(cases, threshold: float | None) -> OperatingPoint | None:
    """``--threshold``, else the calibrated threshold the maps' sidecars (``.CASE.json``) record, else None."""
    if threshold is not None:
        return OperatingPoint(float(threshold), "--threshold")
    records = {}
    for case in cases:
        sidecar = case.prediction.parent / f".{case.case_id}.json"
        record = json.loads(sidecar.read_text()).get("binary") if sidecar.is_file() else None
        records[case.case_id] = record
    carried = {k: v for k, v in records.items() if v is not None}
    if not carried:
        return None
    if len(carried) < len(records):
        without = sorted(set(records) - set(carried))
        raise ValueError(f"case(s) {', '.join(without[:10])} were predicted without --binary while others carry a "
                         f"calibrated threshold; predict every case the same way, or give --threshold.")
    points = {(r["threshold"], r.get("min_lesion_ml", 0.0)) for r in carried.values()}
    if len(points) > 1:
        raise ValueError(f"the maps carry {len(points)} different calibrated thresholds or minimum lesion sizes "
                         f"({sorted(points)[:3]}); predict every case with one calibration, or give --threshold.")
    first = next(iter(carried.values()))
    threshold, min_ml = next(iter(points))
    return OperatingPoint(float(threshold), f"calibrated on healthy scans: voxel false-positive rate "
                          f"{first['voxel_fpr']:g} ({first.get('calibration')})", float(min_ml))


def read_flags_of(prediction_dirs) -> dict[str, bool] | None:
    """The ``flagged`` column of every -pred folder's volume_scores.csv, merged; None where there is none."""
    flags: dict[str, bool] = {}
    for folder in prediction_dirs:
        path = folder / VOLUME_SCORES
        found = read_flags(path) if path.is_file() else None
        if found is None:
            return None
        flags.update(found)
    return flags
