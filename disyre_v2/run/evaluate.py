"""disyre_v2_evaluate: AP, [Dice], AUROC and per-case metrics of a folder of anomaly maps."""
from __future__ import annotations

import argparse

from disyre_v2.run.common import add_common_flags, int_at_least, run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="disyre_v2_evaluate",
        description="Evaluate anomaly maps (PRED/CASE.nii.gz, on the raw grid of each test case) against lesion "
        "labels (REF/CASE.nii.gz, > 0 anomalous): voxel-level AP and [Dice] over all brain voxels pooled, per-case "
        "metrics, volume- and slice-level AUROC, optionally per lesion kind and an HTML report. "
        "See documentation/how_to/evaluate.md.",
        epilog="Example: disyre_v2_evaluate -pred predictions/ -ref $DISYRE_raw/Dataset002_BraTS2020_T1/labelsTs "
        "--report report/",
    )
    parser.add_argument("-pred", "--predictions", required=True, nargs="+", metavar="PRED",
                        help="folder of anomaly maps CASE.nii.gz (with volume_scores.csv and restorations/ when the "
                        "predictor wrote them); several folders: the parts of disyre_v2_predict --num_parts, evaluated "
                        "as one (each case in exactly one folder)")
    parser.add_argument("-ref", "--references", required=True,
                        help="folder of lesion labels CASE.nii.gz, > 0 anomalous (e.g. .../labelsTs); every case in "
                        "it is evaluated")
    parser.add_argument("-mask", "--masks", default=None,
                        help="folder of brain masks CASE.nii.gz (default: the sibling masksTs of a labelsTs folder, "
                        "else any channel > 0 of the sibling imagesTs, else the whole grid)")
    parser.add_argument("-o", "--output", default=None,
                        help="summary JSON to write (default: PRED/summary.json; required with several -pred folders)")
    parser.add_argument("--threshold", type=float, default=None, metavar="VALUE",
                        help="also report Dice, precision, recall and lesion-wise detection at this score threshold "
                        "(default: the calibrated threshold the maps of disyre_v2_predict --binary carry, if any)")
    parser.add_argument("--protocol", default="exact", choices=["exact", "disyre", "upd"],
                        help="voxel-level protocol: exact (all brain voxels, every threshold; default), disyre "
                        "(10 000 random voxels per volume in the brain box, 200 thresholds) or upd (slices 15-134 "
                        "resized to 128x128, 100 thresholds)")
    parser.add_argument("--kinds", default=None,
                        help="JSON file {\"case_id\": \"kind\"} or {\"cases\": {...}}: adds metrics per lesion kind "
                        "(default: the synthetic benchmark's synthetic_cases.json next to -ref, if present)")
    parser.add_argument("--report", default=None,
                        help="folder for an offline HTML report (index.html, PR curve, one sheet per case)")
    parser.add_argument("--seed", type=int_at_least(0), default=0, help="seed of the disyre protocol's voxel sampling (default 0)")
    parser.add_argument("--slice_score", default="max", choices=["max", "top1"],
                        help="score of an axial slice for slice-level AUROC: max of its brain voxels (default) or "
                        "mean of their top 1 %%")
    add_common_flags(parser)
    return parser


def _print_summary(summary: dict, output: str) -> None:
    from disyre_v2.evaluation.summary_table import format_summary

    print(format_summary(summary))
    print(f"Wrote {output}")


def _run(args: argparse.Namespace) -> None:
    from pathlib import Path

    from disyre_v2.evaluation.evaluator import SUMMARY_NAME, evaluate_folders

    import math

    from disyre_v2.errors import UserError

    if len(args.predictions) > 1 and args.output is None:
        raise UserError("several -pred folders were given, so there is no one folder for summary.json",
                        fix="name the summary with -o FILE")
    if args.threshold is not None and not math.isfinite(args.threshold):
        raise UserError(f"--threshold must be a finite number, got {args.threshold}", fix="give a score value")
    summary = evaluate_folders(args.predictions, args.references, mask_dir=args.masks, output=args.output,
                               protocol=args.protocol, kinds_file=args.kinds, report_dir=args.report,
                               seed=args.seed, slice_reduction=args.slice_score, threshold=args.threshold)
    _print_summary(summary, args.output or str(Path(args.predictions[0]) / SUMMARY_NAME))
    if args.report:
        print(f"Report: {Path(args.report) / 'index.html'}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(_run, args)


if __name__ == "__main__":
    raise SystemExit(main())
