"""disyre_v2_export_model: a trained model folder → one reproducible zip to share."""
from __future__ import annotations

import argparse

from disyre_v2.run.common import add_common_flags, int_at_least, run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="disyre_v2_export_model",
        description="Write the model $DISYRE_results/DatasetNNN_Name/<trainer>__<plans>__<configuration> to one zip: "
        "plans.json, dataset.json, each run's weights (the EMA's where kept; no optimizer or training state), the "
        "calibrations made with the exported runs, the validation curves, a model card MODEL.md and manifest.json "
        "(every file's SHA-256). Exporting twice gives the same bytes. Install it with disyre_v2_install_model, or "
        "unzip it and predict with disyre_v2_predict -m FOLDER.",
        epilog="Example: disyre_v2_export_model -d 1 -c 2d_small --seeds 0 1 -o brains_2d_small.zip",
    )
    parser.add_argument("-d", "--dataset", required=True, help="dataset the model was trained on (id or name)")
    parser.add_argument("-c", "--configuration", required=True, help="configuration of the model (2d, 2d_small)")
    parser.add_argument("-tr", "--trainer", default="DisyreTrainer", help="trainer of the model (default DisyreTrainer)")
    parser.add_argument("-p", "--plans", default="DisyrePlans", help="plans identifier of the model (default DisyrePlans)")
    parser.add_argument("-f", "--folds", nargs="+", default=None, help="folds to export (default: every trained fold)")
    parser.add_argument("--seeds", nargs="+", type=int_at_least(0), default=None,
                        help="seeds to export (default: every trained seed)")
    parser.add_argument("-chk", "--checkpoint", default="final", choices=["final", "latest"],
                        help="checkpoint_final.pth (default) or checkpoint_latest.pth of each run")
    parser.add_argument("-o", "--output", required=True, metavar="MODEL.zip", help="the zip file to write")
    # ONNX: disyre_v2.model_sharing.onnx_export.export_onnx(model_folder, configuration, runs, output) writes
    # the networks; it is imported only when the flag is given (disyre_v2.model_sharing.export._onnx_files).
    parser.add_argument("--onnx", action="store_true",
                        help="also put the networks in ONNX format into the zip (under onnx/), for runtimes "
                        "without PyTorch")
    add_common_flags(parser)
    return parser


def _run(args: argparse.Namespace) -> None:
    from pathlib import Path

    from disyre_v2.errors import UserError
    from disyre_v2.model_sharing.export import export_model
    from disyre_v2.paths import resolve_dataset_name, results_folder, writable_file

    output = Path(args.output)
    if output.suffix.lower() != ".zip":
        raise UserError("-o must name a .zip file", output, "give a path ending in .zip, e.g. -o model.zip")
    dataset = resolve_dataset_name(args.dataset)
    folder = results_folder() / dataset / f"{args.trainer}__{args.plans}__{args.configuration}"
    if not folder.is_dir():
        raise UserError("no such model folder", folder,
                        f"train it first (disyre_v2_train {args.dataset} {args.configuration} FOLD -tr {args.trainer}), "
                        "or give the -c/-tr/-p it was trained with")
    writable_file(output, "-o")
    export_model(folder, output, folds=args.folds, seeds=args.seeds, checkpoint=args.checkpoint, onnx=args.onnx)
    print(f"Wrote {output}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(_run, args)


if __name__ == "__main__":
    raise SystemExit(main())
