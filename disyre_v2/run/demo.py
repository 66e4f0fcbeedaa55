"""disyre_v2_demo: the whole chain on the built-in synthetic benchmark, with a report at the end."""
from __future__ import annotations

import argparse

from disyre_v2.run.common import add_common_flags, int_at_least, run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="disyre_v2_demo",
        description="Build the synthetic benchmark (healthy training brains, test brains with glioma-, stroke- "
        "and small-lesion-like anomalies), plan and preprocess it, train the 2d_small model on the CPU within a "
        "time budget (about 11 minutes in all on 2 cores; --quick about 2½), predict anomaly maps for the test "
        "cases, evaluate them and write an HTML report. Everything goes under -o; your own DISYRE_* folders are "
        "not touched.",
    )
    parser.add_argument("-o", "--output", default="disyre_v2_demo",
                        help="folder for everything the demo makes (default ./disyre_v2_demo); a previous demo's "
                        "outputs there are replaced")
    parser.add_argument("--quick", action="store_true",
                        help="fewer cases and a 45-second training budget: checks the chain, learns little")
    parser.add_argument("--seed", type=int_at_least(0), default=0, help="seed of the dataset and the training (default 0)")
    parser.add_argument("-np", "--num_processes", type=int_at_least(1), default=1,
                        help="worker processes for dataset generation and preprocessing (default 1)")
    add_common_flags(parser)
    return parser


def _run(args: argparse.Namespace) -> None:
    from pathlib import Path

    from disyre_v2.demo import run_demo
    from disyre_v2.evaluation.summary_table import format_summary

    summary = run_demo(args.output, quick=args.quick, seed=args.seed, num_processes=args.num_processes)
    timings = summary["demo"]["timings"]
    print()
    print(format_summary(summary))
    print("time: " + ", ".join(f"{k[:-2].replace('_', ' ')} {v:.0f} s" for k, v in timings.items()))
    print(f"Report: {summary['demo']['report']}")
    print(f"Summary: {Path(args.output).resolve() / 'demo_summary.json'}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(_run, args)


if __name__ == "__main__":
    raise SystemExit(main())
