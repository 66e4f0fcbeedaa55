"""Write the report folder: summary.json copy, PR curve, per-case sheets and index.html.

The folder is built under a hidden sibling name and renamed into place when complete, so a failure
never leaves half a report; an existing report (a folder with index.html) is replaced, any other
non-empty folder is refused.
"""
from __future__ import annotations

import logging
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
from tqdm import tqdm

from disyre_v2.dataset.dataset_json import write_json_atomic
from disyre_v2.evaluation.case_result import CaseResult
from disyre_v2.evaluation.case_slices import CaseSlices
from disyre_v2.evaluation.error_analysis import healthy_histogram
from disyre_v2.evaluation.error_figures import plot_false_positive_bands, plot_score_distributions, plot_volume_scores
from disyre_v2.evaluation.pooled_curve import PooledPRCurve
from disyre_v2.evaluation.report_figures import plot_case, plot_pr_curves
from disyre_v2.evaluation.report_html import render_index
from disyre_v2.evaluation.sparse_histogram import SparseHistogram

logger = logging.getLogger(__name__)

INDEX = "index.html"
PR_CURVE = "pr_curve.png"
FALSE_POSITIVES = "false_positive_bands.png"
DISTRIBUTIONS = "score_distributions.png"
VOLUME_SCORES = "volume_scores.png"
CASES = "cases"


def check_report_target(folder: Path) -> None:
    """Refuse a target that is a file, or a non-empty folder that is not a previous report."""
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"--report {folder} is a file; give a folder.")
    if folder.is_dir() and any(folder.iterdir()) and not (folder / INDEX).is_file():
        raise FileExistsError(f"--report {folder} exists, is not empty and is not a disyre_v2 report; choose "
                              f"another folder or empty it.")


def _map_maximum(slices: list[CaseSlices]) -> float:
    """One colour scale for every case: the 99.9th percentile of the shown brain voxels."""
    values = [s.score_map[s.brain] for s in slices if s.brain.any()]
    if not values:
        return 1.0
    top = float(np.percentile(np.concatenate(values), 99.9))
    return top if top > 0 else 1.0


def _write(folder: Path, summary: dict, curve: PooledPRCurve, results: list[CaseResult],
           slices: list[CaseSlices], lesion_rows: list[dict] | None = None) -> None:
    write_json_atomic(summary, folder / "summary.json")
    curves = {}
    pooled = summary.get("pooled_exact", summary["pooled"])
    if pooled["n_positive"]:
        curves[f"all cases: AP {pooled['average_precision']:.3f}, [Dice] {pooled['best_dice']:.3f}"] = curve.curve()
        for kind, metrics in summary.get("per_kind", {}).items():
            members = [r.histogram for r in results if r.kind == kind]
            if metrics["average_precision"] is not None:
                curves[f"{kind}: AP {metrics['average_precision']:.3f}"] = SparseHistogram.merge(members).curve()
    point = summary.get("operating_point")
    marker = None
    if point is not None and point["pooled"]["recall"] is not None and point["pooled"]["precision"] is not None:
        marker = (point["pooled"]["recall"], point["pooled"]["precision"],
                  f"operating point: threshold {point['threshold']:.4g}, Dice {point['pooled']['dice']:.3f}")
    plot_pr_curves(curves, f"{summary['n_cases']} cases, brain voxels pooled", folder / PR_CURVE, marker)
    _write_error_figures(folder, summary, results)

    (folder / CASES).mkdir()
    threshold = summary["per_case_threshold"]
    map_max = _map_maximum(slices)
    per_case = {c["case_id"]: c for c in summary["per_case"]}
    figures = {}
    for case in tqdm(slices, desc="Report", unit="case", disable=len(slices) < 20):
        record = per_case[case.case_id]
        dice = "–" if record["dice"] is None else f"{record['dice']:.3f}"
        caption = (f"{case.case_id}" + (f" ({record['kind']})" if record.get("kind") else "")
                   + f": Dice {dice}, lesion {record['lesion_volume_ml']:.2f} ml, "
                   + f"{record['predicted_voxels'] or 0} voxels at or above the pooled threshold")
        name = f"{CASES}/{case.case_id}.png"
        plot_case(case, threshold, map_max, folder / name, caption,
                  operating_threshold=point["threshold"] if point is not None else None)
        figures[case.case_id] = name
    error_figures = {"false_positives": FALSE_POSITIVES, "distributions": DISTRIBUTIONS, "volume_scores": VOLUME_SCORES}
    (folder / INDEX).write_text(render_index(summary, PR_CURVE, figures, error_figures, lesion_rows),
                                encoding="utf-8")


def _write_error_figures(folder: Path, summary: dict, results: list[CaseResult]) -> None:
    histograms = [r.histogram for r in results]
    groups = {"all cases": SparseHistogram.merge(histograms)}
    for kind in sorted({r.kind for r in results if r.kind is not None}):
        groups[kind] = SparseHistogram.merge(r.histogram for r in results if r.kind == kind)
    plot_false_positive_bands(summary["error_analysis"]["false_positives"], folder / FALSE_POSITIVES)
    plot_score_distributions(groups, healthy_histogram(histograms), folder / DISTRIBUTIONS)
    plot_volume_scores(summary["per_case"], folder / VOLUME_SCORES)


def write_report(folder: Path, summary: dict, curve: PooledPRCurve, results: list[CaseResult],
                 slices: list[CaseSlices], lesion_rows: list[dict] | None = None) -> Path:
    """The report; ``lesion_rows``: the predicted lesions (lesions.csv of disyre_v2_predict --binary)."""
    folder = Path(folder)
    check_report_target(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.parent / f".{folder.name}.{uuid.uuid4().hex[:8]}.tmp"
    staging.mkdir()
    try:
        _write(staging, summary, curve, results, slices, lesion_rows)
        if folder.exists():
            old = folder.parent / f".{folder.name}.{uuid.uuid4().hex[:8]}.old"
            os.replace(folder, old)
            os.replace(staging, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, folder)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    logger.info("Wrote the report %s", folder / INDEX)
    return folder
