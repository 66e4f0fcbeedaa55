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
from disyre_v2.evaluation.operating_point import operating_point_of, read_flags_of
from disyre_v2.evaluation.side_files import SYNTHETIC_SIDECAR, VOLUME_SCORES, load_kinds, read_volume_scores
from disyre_v2.evaluation.summary import build_summary
from disyre_v2.paths import writable_file

logger = logging.getLogger(__name__)

SUMMARY_NAME = "summary.json"
COMPUTED_SCORE = "computed here: mean of the top 1 % of the map's brain voxels"


def _volume_scores(prediction_dirs: list[Path], cases: list[EvaluationCase]) -> tuple[dict[str, float] | None, str]:
    """The predictor's volume scores of every case, from the volume_scores.csv of each -pred folder
    (all or none of them: a mix would score some volumes one way and others another)."""
    paths = [folder / VOLUME_SCORES for folder in prediction_dirs]
    if not any(path.is_file() for path in paths):
        return None, COMPUTED_SCORE
    absent = [str(path) for path in paths if not path.is_file()]
    if absent:
        raise ValueError(f"{absent[0]} is missing while other -pred folders have their {VOLUME_SCORES}; predict "
                         f"every part with disyre_v2_predict, or delete the files to have the scores computed.")
    scores: dict[str, float] = {}
    for path in paths:
        scores.update(read_volume_scores(path))
    missing = [case.case_id for case in cases if case.case_id not in scores]
    if missing:
        raise ValueError(f"{paths[0] if len(paths) == 1 else VOLUME_SCORES + ' of the -pred folders'} has no volume "
                         f"score for case(s) {', '.join(missing[:10])}. Predict those cases again, or delete the "
                         f"file to have the volume scores computed from the maps.")
    return scores, f"{VOLUME_SCORES} of the predictions"


def read_lesion_rows(prediction_dirs: list[Path]) -> list[dict] | None:
    """The rows of every -pred folder's lesions.csv (disyre_v2_predict --binary), or None."""
    import csv

    from disyre_v2.inference.decisions import LESIONS_FILE

    rows = []
    for folder in prediction_dirs:
        if (folder / LESIONS_FILE).is_file():
            with (folder / LESIONS_FILE).open(newline="", encoding="utf-8") as handle:
                rows.extend(csv.DictReader(handle))
    return sorted(rows, key=lambda r: (r["case_id"], int(r["lesion_id"]))) if rows else None


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
    prediction_dir: Path | str | list[Path | str],
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
    threshold: float | None = None,
) -> dict:
    """Evaluate every case of ``reference_dir``; write summary.json (default: in ``prediction_dir``)
    and, with ``report_dir``, an offline HTML report. Returns the summary as a dict.

    Without ``kinds_file``, a synthetic benchmark's ``synthetic_cases.json`` next to a ``labels*``
    reference folder gives the lesion kinds.

    ``prediction_dir`` may be several folders (the parts of ``disyre_v2_predict --num_parts``): the
    result is the one of a single folder holding every map. With ``threshold``, or when the maps'
    sidecars carry the calibrated threshold of ``disyre_v2_predict --binary``, the summary also has
    the metrics at that operating point (``operating_point``)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"Unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}.")
    if slice_reduction not in SLICE_REDUCTIONS:
        raise ValueError(f"Unknown slice score {slice_reduction!r}; choose one of {', '.join(SLICE_REDUCTIONS)}.")
    prediction_dirs = [Path(prediction_dir)] if isinstance(prediction_dir, (str, Path)) else [Path(p) for p in prediction_dir]
    cases = find_cases(prediction_dirs, reference_dir, mask_dir)
    output = writable_file(Path(output) if output is not None else prediction_dirs[0] / SUMMARY_NAME, "the summary (-o)")
    given_scores, score_source = _volume_scores(prediction_dirs, cases)
    operating = operating_point_of(cases, threshold)
    if kinds_file is None and (kinds_file := default_kinds_file(reference_dir)) is not None:
        logger.info("Lesion kinds from %s", kinds_file)
    kinds = _kinds(kinds_file, cases)
    if report_dir is not None:
        from disyre_v2.evaluation.report import check_report_target

        check_report_target(Path(report_dir))

    exact = ExactProtocol(drop_bits)
    other = make_protocol(protocol, seed=seed, drop_bits=drop_bits) if protocol != "exact" else None
    results: list[CaseResult] = []
    at_threshold = []
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
        if operating is not None:
            at_threshold.append(operating.measure(case.case_id, loaded))
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
        folders={"predictions": str(prediction_dirs[0].resolve()) if len(prediction_dirs) == 1 else
                 [str(p.resolve()) for p in prediction_dirs], "references": str(Path(reference_dir).resolve()),
                 "masks": str(Path(mask_dir).resolve()) if mask_dir is not None else None,
                 "kinds": str(Path(kinds_file).resolve()) if kinds_file is not None else None},
        settings={"seed": seed, "drop_bits": drop_bits, "slice_score": slice_reduction,
                  "disyre_v2_version": __version__},
        with_kinds=kinds is not None,
    )
    if operating is not None:
        summary["operating_point"] = operating.summarise(at_threshold, threshold_at_best=exact_result, kinds=kinds,
                                                          flags=read_flags_of(prediction_dirs))
    write_json_atomic(summary, output)
    logger.info("Wrote %s", output)
    if report_dir is not None:
        from disyre_v2.evaluation.report import write_report

        write_report(Path(report_dir), summary, exact.curve, results, slices, read_lesion_rows(prediction_dirs))
    return summary
