"""disyre_v2_predict: anomaly-map NIfTIs for every case of a folder."""
from __future__ import annotations

import argparse

from disyre_v2.inference.score_names import ALL_SCORES, MODEL_FREE_SCORES, NON_RESTORING_SCORES
from disyre_v2.run.common import add_common_flags, float_between, int_at_least, int_between, run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="disyre_v2_predict",
        description="Write an anomaly map OUT/CASE.nii.gz (float32, on the input's grid) for every case "
        "IN/CASE_0000.nii.gz [CASE_0001 ...], averaged over the chosen models (folds x seeds), and "
        "OUT/volume_scores.csv (mean of the top 1%% of brain voxels per case).",
        epilog="Example: disyre_v2_predict -i $DISYRE_raw/Dataset002_BraTS2020_T1/imagesTs -o maps/ -d 1 -c 2d "
        "--seeds 0 1 2 3",
    )
    parser.add_argument("-i", "--input", required=True, help="folder of test cases CASE_0000.nii.gz (one file per channel)")
    parser.add_argument("-o", "--output", required=True, help="folder for the anomaly maps")
    parser.add_argument("-d", "--dataset", required=True, help="dataset the model was trained on (id or name)")
    parser.add_argument("-c", "--configuration", required=True, help="configuration of the model (2d, 2d_small)")
    parser.add_argument("-f", "--folds", nargs="+", default=None, help="folds to use (default: every trained fold)")
    parser.add_argument("--seeds", nargs="+", type=int_at_least(0), default=None, help="seeds to use (default: every trained seed)")
    parser.add_argument("-tr", "--trainer", default="DisyreTrainer", help="trainer of the model (default DisyreTrainer)")
    parser.add_argument("-p", "--plans", default="DisyrePlans", help="plans identifier of the model (default DisyrePlans)")
    parser.add_argument("-chk", "--checkpoint", default="final", choices=["final", "latest"],
                        help="checkpoint_final.pth (default) or checkpoint_latest.pth")
    parser.add_argument("--score", default=None, choices=list(ALL_SCORES),
                        help="anomaly score (default: the trainer's own). Models: ensemble (DISYRE v2: mean over "
                        "levels of |P(x,t) - x|), singlestep, multistep (DISYRE v1), unconditional (|P(x) - x| of a "
                        "model without level input), residual (|x - P(x)| of DaeTrainer and VaeTrainer), segmentation "
                        "(the predicted anomaly map of FpiSegmentationTrainer). No model, no training: intensity "
                        "(one channel's normalised intensity, see --channel and --direction) and joint_histogram "
                        "(-log density of the voxel's intensities over all channels in the healthy training cases)")
    parser.add_argument("--channel", default=None,
                        help="--score intensity: the channel, by name in dataset.json or number (needed when there "
                        "are several)")
    parser.add_argument("--direction", default="bright", choices=["bright", "dark"],
                        help="--score intensity: bright (default: score = intensity, lesions brighter than tissue) or "
                        "dark (score = max(1 - intensity, 0))")
    parser.add_argument("--levels", nargs="+", type=int_at_least(0), default=None,
                        help="levels t of the ensemble, each in 0..T-1 (default: the plans', 0 25 50 75), or the one "
                        "level of singlestep")
    parser.add_argument("--multistep_step", type=int_between(1, 99), default=25, help="level step of the multistep score, 1..99 (default 25)")
    parser.add_argument("--tile_step", type=float_between(0.0, 1.0, low_inclusive=False), default=None,
                        help="window step as a fraction of the patch, in (0, 1] (default: the plans', 0.25 = 75%% "
                        "overlap)")
    parser.add_argument("--masks", default=None,
                        help="folder of brain masks CASE.nii.gz (default: masksTs beside an imagesTs input, "
                        "else any channel > 0)")
    parser.add_argument("--save_restorations", action="store_true",
                        help="also write the restored images to OUT/restorations/CASE_XXXX.nii.gz")
    parser.add_argument("--native_space", default=None, metavar="PREPARED",
                        help="output folder of disyre_v2_prepare (or of a converter run with --prepare) the input "
                        "cases were prepared into: also write each map on the case's original scan grid, "
                        "OUT/native/CASE.nii.gz, through the inverse of its stored transform")
    parser.add_argument("-device", "--device", default="cpu", choices=["cpu", "cuda"], help="device (default cpu)")
    parser.add_argument("--batch_windows", type=int_at_least(1), default=None,
                        help="windows per forward pass, >= 1, each expanded over the ensemble levels (default: 32 "
                        "samples per pass on CPU, 256 on GPU)")
    parser.add_argument("--compile", default="auto", choices=["auto", "on", "off"],
                        help="torch.compile the network: auto (default) compiles on CUDA only, where it is about "
                        "2.7x faster; on forces it (also on CPU; falls back to eager if compilation fails)")
    parser.add_argument("-np", "--num_processes", type=int_at_least(0), default=None,
                        help="background processes that read and preprocess the next cases and write finished maps "
                        "while the network scores, >= 0 (default: 2 with -device cuda, 0 on CPU, where they would "
                        "compete with the network for the same cores)")
    parser.add_argument("--num_parts", type=int_at_least(1), default=1, help="split the cases into this many parts, >= 1 (default 1)")
    parser.add_argument("--part_id", type=int_at_least(0), default=0, help="which part this process predicts, 0..num_parts-1")
    parser.add_argument("--continue", dest="resume", action="store_true", help="skip cases already written to OUT")
    add_common_flags(parser)
    return parser


def _run(args: argparse.Namespace) -> None:
    from pathlib import Path

    import torch

    from disyre_v2.errors import UserError
    from disyre_v2.inference.predict_folder import predict_folder
    from disyre_v2.inference.predictor import DisyrePredictor
    from disyre_v2.paths import resolve_dataset_name, results_folder, writable_folder

    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("-device cuda was given but no CUDA device is available; use -device cpu.")
    if args.part_id >= args.num_parts:
        raise UserError(f"--part_id {args.part_id} is not one of the {args.num_parts} part(s)",
                        fix=f"give --part_id in 0..{args.num_parts - 1}")
    if not Path(args.input).is_dir():
        raise UserError("-i must be a folder of test cases CASE_0000.nii.gz, but it is not one", args.input,
                        "give the folder that holds the cases (e.g. $DISYRE_raw/DatasetNNN_Name/imagesTs)")
    if Path(args.output).exists() and not Path(args.output).is_dir():
        raise UserError("-o must be a folder, but it is a file", args.output, "give a folder path")
    _check_restorations_wanted(args.save_restorations, args.score)  # before a histogram is fitted
    if args.channel is not None and args.score != "intensity":
        raise UserError(f"--channel is for --score intensity, not --score {args.score or 'of the trainer'}",
                        fix="leave out --channel, or give --score intensity")
    dataset = resolve_dataset_name(args.dataset)
    if args.score in MODEL_FREE_SCORES:
        predictor = _model_free_predictor(args, dataset)
    else:
        folder = results_folder() / dataset / f"{args.trainer}__{args.plans}__{args.configuration}"
        if not folder.is_dir():
            raise FileNotFoundError(f"No model folder {folder}: train it with disyre_v2_train {args.dataset} "
                                    f"{args.configuration} FOLD -tr {args.trainer}.")
        predictor = DisyrePredictor.from_model_folder(
            folder, args.configuration, args.folds, args.seeds, args.checkpoint, args.device, score=args.score,
            levels=args.levels, tile_step=args.tile_step, batch_windows=args.batch_windows,
            multistep_step=args.multistep_step, compile={"auto": None, "on": True, "off": False}[args.compile])
    _check_restorations_wanted(args.save_restorations, predictor.score)  # the trainer's own score
    writable_folder(args.output, "-o")  # before the first case is scored
    written = predict_folder(predictor, args.input, args.output, masks_folder=args.masks,
                             save_restorations=args.save_restorations, resume=args.resume,
                             num_parts=args.num_parts, part_id=args.part_id, native_space=args.native_space,
                             num_workers=args.num_processes if args.num_processes is not None
                             else (2 if args.device == "cuda" else 0))
    print(f"Wrote {len(written)} anomaly map(s) to {args.output}")


def _check_restorations_wanted(save_restorations: bool, score: str | None) -> None:
    from disyre_v2.errors import UserError

    if save_restorations and score in NON_RESTORING_SCORES:
        raise UserError(f"--score {score} restores nothing, so there is nothing for --save_restorations to write",
                        fix="leave out --save_restorations")


def _model_free_predictor(args: argparse.Namespace, dataset: str):
    """The intensity baselines: the dataset's plans, and for joint_histogram its healthy training cases
    (the fitted histogram is kept in $DISYRE_results/DATASET/ModelFree__PLANS__CONFIG/)."""
    from disyre_v2.errors import UserError
    from disyre_v2.inference.model_free import model_free_predictor
    from disyre_v2.paths import preprocessed_folder, raw_folder, results_folder
    from disyre_v2.planning.plans import load_plans

    plans_path = preprocessed_folder() / dataset / "plans.json"
    if not plans_path.is_file():
        raise UserError(f"--score {args.score} uses the dataset's plans, but there are none", plans_path,
                        f"run disyre_v2_plan_and_preprocess -d {args.dataset} -c {args.configuration} first")
    return model_free_predictor(load_plans(plans_path), args.configuration, args.score, raw_folder() / dataset,
                                results_folder() / dataset / f"ModelFree__{args.plans}__{args.configuration}",
                                channel=args.channel, direction=args.direction)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(_run, args)


if __name__ == "__main__":
    raise SystemExit(main())
