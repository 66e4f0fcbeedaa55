"""disyre_v2_plan_and_preprocess: fingerprint, tissue clusters, plans, splits and preprocessing."""
from __future__ import annotations

import argparse
import os

from disyre_v2.planning.defaults import CONFIGURATIONS
from disyre_v2.run.common import add_common_flags, int_at_least, run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="disyre_v2_plan_and_preprocess",
        description="Extract the dataset fingerprint (with k-Means tissue clusters) of the healthy training "
                    "cases in $DISYRE_raw/DatasetNNN_Name, write plans.json and splits_final.json, and "
                    "preprocess every training case into $DISYRE_preprocessed/DatasetNNN_Name/<configuration>/. "
                    "Re-running reuses the fingerprint, the plans (hand edits are kept) and finished cases.",
    )
    parser.add_argument("-d", "--dataset", required=True,
                        help="dataset id (1, 001) or full name (Dataset001_Name) in $DISYRE_raw")
    parser.add_argument("-c", "--configurations", nargs="+", default=list(CONFIGURATIONS), metavar="CONFIG",
                        help=f"configurations to plan and preprocess (default: {' '.join(CONFIGURATIONS)}); a "
                             f"configuration added by hand to an existing plans.json is preprocessed as it stands")
    parser.add_argument("-np", "--num_processes", type=int_at_least(1), default=min(4, os.cpu_count() or 1),
                        help="worker processes for the fingerprint and the preprocessing (default: "
                             "min(4, CPU count)); the results do not depend on it")
    parser.add_argument("--verify_dataset_integrity", action="store_true",
                        help="check the raw dataset first and stop with the list of problems found")
    parser.add_argument("--clean", action="store_true",
                        help="recompute the fingerprint, re-plan (discarding hand edits of plans.json) and "
                             "preprocess every case again; splits_final.json is kept")
    parser.add_argument("--no_preprocessing", action="store_true",
                        help="write the fingerprint, plans and splits only")
    parser.add_argument("--no_progress", action="store_true", help="hide the progress bars")
    add_common_flags(parser)
    return parser


def _run(args: argparse.Namespace) -> None:
    from disyre_v2.planning.plan_and_preprocess_api import plan_and_preprocess

    if args.num_processes < 1:
        raise ValueError(f"-np must be at least 1, got {args.num_processes}.")
    folder = plan_and_preprocess(
        args.dataset,
        configurations=list(dict.fromkeys(args.configurations)),
        num_workers=args.num_processes,
        verify_integrity=args.verify_dataset_integrity,
        clean=args.clean,
        preprocess_data=not args.no_preprocessing,
        progress=not args.no_progress,
    )
    print(f"Plans and preprocessed data are in {folder}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(_run, args)


if __name__ == "__main__":
    raise SystemExit(main())
