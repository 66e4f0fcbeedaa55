"""disyre_v2_calibrate: healthy score distributions for thresholds chosen without lesion labels."""
from __future__ import annotations

import argparse

from disyre_v2.run.common import add_common_flags, float_between, run_cli
from disyre_v2.run.predictor_flags import add_model_flags


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="disyre_v2_calibrate",
        description="Score held-out healthy scans with exactly the models and settings a later disyre_v2_predict "
        "will use, and store their voxel- and volume-score distributions in the model folder "
        "(calibrations/calibration_<key>.json). disyre_v2_predict --binary reads it to threshold the maps at a "
        "chosen false-positive rate on healthy voxels and to flag abnormal volumes. Healthy scans: -i FOLDER, or by "
        "default the validation cases of the trained folds, each scored only by the models of its own fold.",
        epilog="Example: disyre_v2_calibrate -d 1 -c 2d -f 0 1 2 3 4 -device cuda, then disyre_v2_predict -i IN -o OUT "
        "-d 1 -c 2d -f 0 1 2 3 4 -device cuda --binary | a shared model: disyre_v2_calibrate -m MODEL_FOLDER -i HEALTHY",
    )
    add_model_flags(parser, model_free=False)
    parser.add_argument("-i", "--input", default=None, metavar="HEALTHY_FOLDER",
                        help="folder of healthy scans CASE_0000.nii.gz [CASE_0001 ...], prepared like the training "
                        "data and scanned like the patients (default: the validation cases of the folds)")
    parser.add_argument("--masks", default=None,
                        help="with -i: folder of brain masks CASE.nii.gz (default: masksTr/masksTs beside an "
                        "imagesTr/imagesTs input, else any channel > 0)")
    parser.add_argument("--voxel_fpr", type=float_between(0.0, 1.0, low_inclusive=False, high_inclusive=False),
                        default=None, metavar="RATE",
                        help="the false-positive rate you intend to use, in (0, 1): only to warn when the healthy "
                        "scans are too few to resolve it (default 1e-3, predict --binary's default)")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    add_common_flags(parser)
    return parser


def _run(args: argparse.Namespace) -> None:
    from pathlib import Path

    from disyre_v2.errors import UserError
    from disyre_v2.inference.calibrate import calibrate
    from disyre_v2.inference.calibration import DEFAULT_VOXEL_FPR
    from disyre_v2.paths import preprocessed_folder, raw_folder, resolve_dataset_name
    from disyre_v2.run.predictor_flags import build_predictor, check_device, choose_model, model_folder, \
        refuse_flags_that_do_nothing
    from disyre_v2.run.train import warn_if_paper_network_on_cpu

    check_device(args.device)
    choose_model(args)  # -m, or -d and -c
    if args.model is not None and args.input is None:
        raise UserError("with -m, the healthy scans must be given with -i: the folds' validation cases are in the "
                        "dataset the model was trained on", fix="give -i HEALTHY_FOLDER, or -d/-c instead of -m")
    if args.input is not None and not Path(args.input).is_dir():
        raise UserError("-i must be a folder of healthy scans CASE_0000.nii.gz, but it is not one", args.input,
                        "give the folder that holds them")
    if args.masks is not None and args.input is None:
        raise UserError("--masks is for the scans of -i; the validation cases use their dataset's masksTr",
                        fix="leave out --masks, or give -i")
    refuse_flags_that_do_nothing(args, args.score)
    warn_if_paper_network_on_cpu(args.configuration, args.device, "calibration")
    dataset = resolve_dataset_name(args.dataset) if args.model is None else None
    folder = model_folder(args, dataset)
    def make_predictor(folds):
        predictor = build_predictor(args, folder, folds)
        refuse_flags_that_do_nothing(args, predictor.score)  # the trainer's own score, before any case is read
        return predictor

    path = calibrate(make_predictor, folder, args.checkpoint,
                     folds=args.folds, seeds=args.seeds, healthy_folder=args.input, masks_folder=args.masks,
                     splits_file=preprocessed_folder() / dataset / "splits_final.json" if args.input is None else None,
                     raw_dataset=raw_folder() / dataset if args.input is None else None,
                     voxel_fpr=args.voxel_fpr or DEFAULT_VOXEL_FPR, progress=not args.no_progress)
    print(f"Wrote {path}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(_run, args)


if __name__ == "__main__":
    raise SystemExit(main())
