"""Evaluate a folder of anomaly maps against a folder of lesion labels (the API behind disyre_v2_evaluate).

One pass over the cases: each map is read once, binned into a sparse histogram (kept), added to the
pooled histogram and, for another protocol, to that protocol's accumulator. The pooled threshold is
known only at the end; the kept histograms then give every case's Dice at it without a second read.
"""
from __future__ import annotations

import logging
from pathlib import Path

from tqdm import tqdm

from disyre_v2 import __version__
from disyre_v2.dataset.dataset_json import write_json_atomic
from disyre_v2.evaluation.case_files import EvaluationCase, find_cases
from disyre_v2.evaluation.case_reader import load_case
from disyre_v2.evaluation.case_result import CaseResult, measure_case
from disyre_v2.evaluation.case_slices import extract_slices
from disyre_v2.evaluation.pooled_curve import DEFAULT_DROP_BITS
from disyre_v2.evaluation.protocols import PROTOCOLS, ExactProtocol, make_protocol
from disyre_v2.evaluation.ranking import SLICE_REDUCTIONS
from disyre_v2.evaluation.side_files import SYNTHETIC_SIDECAR, VOLUME_SCORES, load_kinds, read_volume_scores
from disyre_v2.evaluation.summary import build_summary
from disyre_v2.paths import writable_file

logger = logging.getLogger(__name__)

SUMMARY_NAME = "summary.json"
COMPUTED_SCORE = "computed here: mean of the top 1 % of the map's brain voxels"


def _volume_scores(prediction_dir: Path, cases: list[EvaluationCase]) -> tuple[dict[str, float] | None, str]:
    path = prediction_dir / VOLUME_SCORES
    if not path.is_file():
        return None, COMPUTED_SCORE
    scores = read_volume_scores(path)
    missing = [case.case_id for case in cases if case.case_id not in scores]
    if missing:
        raise ValueError(f"{path} has no volume score for case(s) {', '.join(missing[:10])}. Predict those cases "
                         f"again, or delete the file to have the volume scores computed from the maps.")
    return scores, f"{path.name} of the predictions"


def default_kinds_file(reference_dir: Path | str) -> Path | None:
    """The synthetic benchmark's sidecar next to its labelsTs folder, when there is one."""
    sidecar = Path(reference_dir).parent / SYNTHETIC_SIDECAR
    return sidecar if Path(reference_dir).name.startswith("labels") and sidecar.is_file() else None


def _kinds(kinds_file: Path | str | None, cases: list[EvaluationCase]) -> dict[str, str] | None:
    if kinds_file is None:
        return None
    kinds = load_kinds(kinds_file)
    missing = [case.case_id for case in cases if case.case_id not in kinds]
    if missing:
        raise ValueError(f"{kinds_file} gives no kind for case(s) {', '.join(missing[:10])}"
                         f"{' and more' if len(missing) > 10 else ''}; it must list every evaluated case.")
    return kinds


def evaluate_folders(
    prediction_dir: Path | str,
    reference_dir: Path | str,
    mask_dir: Path | str | None = None,
    output: Path | str | None = None,
    protocol: str = "exact",
    kinds_file: Path | str | None = None,
    report_dir: Path | str | None = None,
    seed: int = 0,
    slice_reduction: str = "max",
    drop_bits: int = DEFAULT_DROP_BITS,
    progress: bool = True,
) -> dict:
    """Evaluate every case of ``reference_dir``; write summary.json (default: in ``prediction_dir``)
    and, with ``report_dir``, an offline HTML report. Returns the summary as a dict.

    Without ``kinds_file``, a synthetic benchmark's ``synthetic_cases.json`` next to a ``labels*``
    reference folder gives the lesion kinds."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"Unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}.")
    if slice_reduction not in SLICE_REDUCTIONS:
        raise ValueError(f"Unknown slice score {slice_reduction!r}; choose one of {', '.join(SLICE_REDUCTIONS)}.")
    prediction_dir = Path(prediction_dir)
    cases = find_cases(prediction_dir, reference_dir, mask_dir)
    output = writable_file(Path(output) if output is not None else prediction_dir / SUMMARY_NAME, "the summary (-o)")
    given_scores, score_source = _volume_scores(prediction_dir, cases)
    if kinds_file is None and (kinds_file := default_kinds_file(reference_dir)) is not None:
        logger.info("Lesion kinds from %s", kinds_file)
    kinds = _kinds(kinds_file, cases)
    if report_dir is not None:
        from disyre_v2.evaluation.report import check_report_target

        check_report_target(Path(report_dir))

    exact = ExactProtocol(drop_bits)
    other = make_protocol(protocol, seed=seed, drop_bits=drop_bits) if protocol != "exact" else None
    results: list[CaseResult] = []
    slices = []
    for case in tqdm(cases, desc="Evaluating", unit="case", disable=not progress):
        loaded = load_case(case)
        result = measure_case(case.case_id, loaded, case.brain_source,
                              None if given_scores is None else given_scores[case.case_id],
                              slice_reduction, drop_bits)
        result.kind = None if kinds is None else kinds[case.case_id]
        exact.add_histogram(result.histogram)
        if other is not None:
            other.add(case.case_id, loaded.score_map, loaded.label, loaded.brain)
        if report_dir is not None:
            slices.append(extract_slices(case, loaded))
        results.append(result)
        del loaded

    exact_result = exact.result()
    if exact_result["n_positive"] == 0:
        logger.warning("No labelled voxel inside the brain in any case: voxel-level AP and [Dice] are undefined.")
    threshold = exact_result["best_threshold"]
    per_case = [result.at_threshold(threshold) for result in results]
    summary = build_summary(
        protocol=protocol, protocol_result=other.result() if other is not None else exact_result,
        exact_result=exact_result, results=results, per_case=per_case, slice_reduction=slice_reduction,
        volume_score_source=score_source,
        folders={"predictions": str(prediction_dir.resolve()), "references": str(Path(reference_dir).resolve()),
                 "masks": str(Path(mask_dir).resolve()) if mask_dir is not None else None,
                 "kinds": str(Path(kinds_file).resolve()) if kinds_file is not None else None},
        settings={"seed": seed, "drop_bits": drop_bits, "slice_score": slice_reduction,
                  "disyre_v2_version": __version__},
        with_kinds=kinds is not None,
    )
    write_json_atomic(summary, output)
    logger.info("Wrote %s", output)
    if report_dir is not None:
        from disyre_v2.evaluation.report import write_report

        write_report(Path(report_dir), summary, exact.curve, results, slices)
    return summary
