"""disyre_v2_predict: anomaly-map NIfTIs for every case of a folder."""
from __future__ import annotations

import argparse
from pathlib import Path

from disyre_v2.inference.calibration import DEFAULT_MIN_LESION_ML, DEFAULT_VOLUME_ALPHA, DEFAULT_VOXEL_FPR
from disyre_v2.run.common import add_common_flags, float_between, int_at_least, run_cli
from disyre_v2.run.predictor_flags import add_model_flags, refuse_flags_that_do_nothing
from disyre_v2.training.score_names import MODEL_FREE_SCORES, NON_RESTORING_SCORES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="disyre_v2_predict",
        description="Write an anomaly map OUT/CASE.nii.gz (float32, on the input's grid) for every case "
        "IN/CASE_0000.nii.gz [CASE_0001 ...], averaged over the chosen models (folds x seeds), and "
        "OUT/volume_scores.csv (mean of the top 1% of brain voxels per case).",
        epilog="Example: disyre_v2_predict -i $DISYRE_raw/Dataset002_BraTS2020_T1/imagesTs -o maps/ -d 1 -c 2d "
        "--seeds 0 1 2 3 | a shared model: disyre_v2_predict -i IN -o OUT -m MODEL_FOLDER",
    )
    parser.add_argument("-i", "--input", required=True, help="folder of test cases CASE_0000.nii.gz (one file per channel)")
    parser.add_argument("-o", "--output", required=True, help="folder for the anomaly maps")
    add_model_flags(parser)
    parser.add_argument("--channel", default=None,
                        help="--score intensity: the channel, by name in dataset.json or number (needed when there "
                        "are several)")
    parser.add_argument("--direction", default=None, choices=["bright", "dark"],
                        help="--score intensity only: bright (default: score = intensity, lesions brighter than "
                        "tissue) or dark (score = max(1 - intensity, 0))")
    parser.add_argument("--masks", default=None,
                        help="folder of brain masks CASE.nii.gz (default: masksTs beside an imagesTs input, "
                        "else any channel > 0)")
    parser.add_argument("--save_restorations", action="store_true",
                        help="also write the restored images to OUT/restorations/CASE_XXXX.nii.gz")
    parser.add_argument("--native_space", default=None, metavar="PREPARED",
                        help="output folder of disyre_v2_prepare (or of a converter run with --prepare) the input "
                        "cases were prepared into: also write each map on the case's original scan grid, "
                        "OUT/native/CASE.nii.gz, through the inverse of its stored transform")
    decisions = parser.add_argument_group(
        "decisions (thresholds calibrated on healthy scans by disyre_v2_calibrate with the same model flags)")
    decisions.add_argument("--binary", action="store_true",
                           help="also write OUT/CASE_mask.nii.gz (uint8 0/1: brain voxels scoring above the calibrated "
                           "threshold, lesions smaller than --min_lesion_ml removed; on the native grid too with "
                           "--native_space), OUT/lesions.csv (one row per lesion: volume, centroid in LPS world mm, "
                           "bounding box, scores) and each volume's calibrated p-value and flag in volume_scores.csv")
    decisions.add_argument("--voxel_fpr", type=float_between(0.0, 1.0, low_inclusive=False, high_inclusive=False),
                           default=None, metavar="RATE",
                           help=f"--binary: the share of healthy brain voxels allowed above the threshold, in (0, 1) "
                           f"(default {DEFAULT_VOXEL_FPR:g}, chosen on the synthetic benchmark)")
    decisions.add_argument("--volume_alpha", type=float_between(0.0, 1.0, low_inclusive=False, high_inclusive=False),
                           default=None, metavar="ALPHA",
                           help=f"--binary: flag a volume when its calibrated p-value is <= ALPHA, in (0, 1) (default "
                           f"{DEFAULT_VOLUME_ALPHA:g}: about 5%% of healthy volumes flagged)")
    decisions.add_argument("--min_lesion_ml", type=float_between(0.0, float("inf")), default=None, metavar="ML",
                           help=f"--binary: remove lesions (26-connected components) smaller than ML millilitres, "
                           f">= 0 (default {DEFAULT_MIN_LESION_ML:g})")
    decisions.add_argument("--save_uncertainty", action="store_true",
                           help="also write OUT/CASE_std.nii.gz: per voxel the standard deviation of the score over "
                           "the maps it averages (every model, and for --score ensemble every level of every model)")
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

    from disyre_v2.errors import UserError
    from disyre_v2.imageio.atomic import first_missing_folder, remove_empty_tree
    from disyre_v2.inference.predict_folder import predict_folder
    from disyre_v2.paths import resolve_dataset_name, writable_folder
    from disyre_v2.run.predictor_flags import build_predictor, check_device, choose_model, model_folder

    check_device(args.device)
    choose_model(args)  # -m, or -d and -c; before anything is read
    if args.model is not None and args.score in MODEL_FREE_SCORES:
        raise UserError(f"--score {args.score} uses no model but the dataset's plans and training cases; -m names "
                        f"a model", fix=f"give -d DATASET -c CONFIGURATION with --score {args.score}, or leave out "
                        "--score")
    if args.part_id >= args.num_parts:
        raise UserError(f"--part_id {args.part_id} is not one of the {args.num_parts} part(s)",
                        fix=f"give --part_id in 0..{args.num_parts - 1}")
    _check_decision_flags(args)
    if not Path(args.input).is_dir():
        raise UserError("-i must be a folder of test cases CASE_0000.nii.gz, but it is not one", args.input,
                        "give the folder that holds the cases (e.g. $DISYRE_raw/DatasetNNN_Name/imagesTs)")
    if Path(args.output).exists() and not Path(args.output).is_dir():
        raise UserError("-o must be a folder, but it is a file", args.output, "give a folder path")
    _check_restorations_wanted(args.save_restorations, args.score)  # before a histogram is fitted
    refuse_flags_that_do_nothing(args, args.score)  # before the models are read
    if args.score not in MODEL_FREE_SCORES:
        from disyre_v2.run.train import warn_if_paper_network_on_cpu

        warn_if_paper_network_on_cpu(args.configuration, args.device, "prediction")
    dataset = resolve_dataset_name(args.dataset) if args.model is None else None  # -m reads no DISYRE_* variable
    decision = None
    if args.score in MODEL_FREE_SCORES:
        predictor = _model_free_predictor(args, dataset)
    else:
        folder = model_folder(args, dataset)
        predictor = build_predictor(args, folder)
    _check_restorations_wanted(args.save_restorations, predictor.score)  # the trainer's own score
    refuse_flags_that_do_nothing(args, predictor.score)  # the trainer's own score, before any case is read
    if args.save_uncertainty and len(predictor.models) < 2 and predictor.score != "ensemble":
        raise UserError(f"--save_uncertainty needs several models (folds or seeds) or --score ensemble; this "
                        f"prediction averages one model's {predictor.score} score", fix="leave out --save_uncertainty, "
                        "or predict with several trained seeds or folds")
    if args.binary:
        decision = _decision(args, predictor, folder)  # before any case is read
    created = first_missing_folder(args.output)
    try:
        writable_folder(args.output, "-o")  # before the first case is scored
        written = predict_folder(predictor, args.input, args.output, masks_folder=args.masks,
                                 save_restorations=args.save_restorations, resume=args.resume,
                                 num_parts=args.num_parts, part_id=args.part_id, native_space=args.native_space,
                                 num_workers=args.num_processes if args.num_processes is not None
                                 else (2 if args.device == "cuda" else 0), decision=decision,
                                 save_uncertainty=args.save_uncertainty)
    except BaseException:
        if created is not None:  # a failed run leaves no empty output folder behind (never a user's own)
            remove_empty_tree(created)
        raise
    print(f"Wrote {len(written)} anomaly map(s) to {args.output}")


def _check_decision_flags(args: argparse.Namespace) -> None:
    """--voxel_fpr, --volume_alpha and --min_lesion_ml shape --binary's output: without it they do nothing."""
    from disyre_v2.errors import UserError

    for flag, dest in (("--voxel_fpr", "voxel_fpr"), ("--volume_alpha", "volume_alpha"),
                       ("--min_lesion_ml", "min_lesion_ml")):
        if getattr(args, dest) is not None and not args.binary:
            raise UserError(f"{flag} sets the binary output, but --binary was not given",
                            fix=f"add --binary, or leave out {flag}")
    if args.save_uncertainty and args.score in MODEL_FREE_SCORES:
        raise UserError(f"--save_uncertainty measures the spread over models and levels; --score {args.score} "
                        f"uses no model", fix="leave out --save_uncertainty")
    if args.binary and args.score in MODEL_FREE_SCORES:
        raise UserError(f"--binary needs a trained model calibrated with disyre_v2_calibrate; --score {args.score} "
                        f"uses no model", fix="predict with a trained model, or leave out --binary")


def _decision(args: argparse.Namespace, predictor, folder: Path):
    """The calibration made with exactly this prediction's settings, and the thresholds it gives."""
    import logging

    from disyre_v2.inference.calibrate import prediction_settings
    from disyre_v2.inference.calibration import calibration_path, calibration_warnings, find_calibration
    from disyre_v2.inference.decisions import BinaryDecision

    settings = prediction_settings(predictor, folder, args.checkpoint)
    calibration = find_calibration(folder, settings)
    rate = args.voxel_fpr if args.voxel_fpr is not None else DEFAULT_VOXEL_FPR
    for warning in calibration_warnings(calibration.num_voxels, calibration.num_volumes, rate):
        logging.getLogger(__name__).warning("Calibration: %s.", warning)
    return BinaryDecision.from_calibration(
        calibration, calibration_path(folder, settings), rate,
        args.volume_alpha if args.volume_alpha is not None else DEFAULT_VOLUME_ALPHA,
        args.min_lesion_ml if args.min_lesion_ml is not None else DEFAULT_MIN_LESION_ML)


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
                                channel=args.channel, direction=args.direction or "bright",
                                median_filter_size=args.median_filter)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(_run, args)


if __name__ == "__main__":
    raise SystemExit(main())
