"""The flags that choose a trained model and how it scores, shared by disyre_v2_predict and
disyre_v2_calibrate: a calibration holds only for the settings a later prediction uses, so both
commands take them in one way and build the predictor in one way."""
from __future__ import annotations

import argparse
from pathlib import Path

from disyre_v2.run.common import float_between, int_at_least, int_between
from disyre_v2.training.score_names import ALL_SCORES, MODEL_FREE_SCORES, MODEL_SCORES


def add_model_flags(parser: argparse.ArgumentParser, *, model_free: bool = True) -> None:
    """-d, -c, -m, -f, --seeds, -tr, -p, -chk, --score, --levels, --multistep_step, --tile_step,
    --median_filter, -device, --batch_windows, --compile, --precision, --backend."""
    parser.add_argument("-d", "--dataset", default=None,
                        help="dataset the model was trained on (id or name); with -c, required unless -m is given")
    parser.add_argument("-c", "--configuration", default=None,
                        help="configuration of the model (2d, 2d_small); with -d, required unless -m is given")
    parser.add_argument("-m", "--model", default=None, metavar="MODEL_FOLDER",
                        help="the model folder itself instead of -d/-c/-tr/-p: an installed or unzipped "
                        "disyre_v2_export_model zip, or any trained model folder; needs no DISYRE_* variable")
    parser.add_argument("-f", "--folds", nargs="+", default=None, help="folds to use (default: every trained fold)")
    parser.add_argument("--seeds", nargs="+", type=int_at_least(0), default=None,
                        help="seeds to use (default: every trained seed)")
    parser.add_argument("-tr", "--trainer", default=None, help="trainer of the model (default DisyreTrainer)")
    parser.add_argument("-p", "--plans", default=None, help="plans identifier of the model (default DisyrePlans)")
    parser.add_argument("-chk", "--checkpoint", default=None, choices=["final", "latest"],
                        help="checkpoint_final.pth (default; with -m: the checkpoint the model was exported with) "
                        "or checkpoint_latest.pth")
    scores = ALL_SCORES if model_free else MODEL_SCORES
    free = (" No model, no training: intensity (one channel's normalised intensity, see --channel and --direction) "
            "and joint_histogram (-log density of the voxel's intensities over all channels in the healthy "
            "training cases)") if model_free else ""
    parser.add_argument("--score", default=None, choices=list(scores),
                        help="anomaly score (default: the trainer's own). Models: ensemble (DISYRE v2: mean over "
                        "levels of |P(x,t) - x|), singlestep, multistep (DISYRE v1), unconditional (|P(x) - x| of a "
                        "model without level input), residual (|x - P(x)| of DaeTrainer and VaeTrainer), segmentation "
                        "(the predicted anomaly map of FpiSegmentationTrainer and PiiTrainer), "
                        "restoration (r-VAE, RVaeTrainer: "
                        "|x - x_r|, x_r the MAP restoration of x under the VAE prior, 500 gradient steps), patch_density "
                        "(CutPasteTrainer: Mahalanobis distance of sub-patch features under the Gaussian density of "
                        "healthy ones, averaged over the sub-patches covering each pixel)." + free)
    parser.add_argument("--levels", nargs="+", type=int_at_least(0), default=None,
                        help="levels t of the ensemble, each in 0..T-1 (default: the plans', 0 25 50 75), or the one "
                        "level of singlestep; refused with other scores")
    parser.add_argument("--multistep_step", type=int_between(1, 99), default=None,
                        help="--score multistep only: its level step, 1..99 (default 25)")
    parser.add_argument("--tile_step", type=float_between(0.0, 1.0, low_inclusive=False), default=None,
                        help="window step as a fraction of the patch, in (0, 1] (default: the plans', 0.25 = 75%% "
                        "overlap)")
    parser.add_argument("--median_filter", type=median_filter_size, default=None, metavar="SIZE",
                        help="side in voxels (of the plans' spacing) of the 3D median filter of the map: 0 = none (the "
                        "paper's raw map), else odd (default: the plans' inference.median_filter_size: 0 in 2d, 3 in "
                        "2d_small, measured at 2 mm). Recorded in each map's sidecar OUT/.CASE.json")
    parser.add_argument("-device", "--device", default="cpu", choices=["cpu", "cuda"], help="device (default cpu)")
    parser.add_argument("--batch_windows", type=int_at_least(1), default=None,
                        help="windows per forward pass, >= 1, each expanded over the ensemble levels (default: 32 "
                        "samples per pass on CPU, 256 on GPU)")
    parser.add_argument("--compile", default="auto", choices=["auto", "on", "off"],
                        help="torch.compile the network: auto (default) compiles on CUDA only; on forces it (also on CPU; "
                        "falls back to eager if compilation fails). python benchmarks/gpu_speed.py measures both")
    parser.add_argument("--precision", default=None, choices=["fp32", "bf16"],
                        help="precision of the network's forward pass: fp32, or bf16 autocast (on CPU too). Default: "
                        "bf16 with -device cuda, fp32 on cpu; measured, bf16 moves single voxels by up to 6%% of the "
                        "map's range but not AP, Dice or volume AUROC (documentation/explanation/performance.md). "
                        "Recorded in each map's sidecar OUT/.CASE.json")
    parser.add_argument("--backend", default="torch", choices=["torch", "onnxruntime"],
                        help="what runs the network: torch (default), or onnxruntime (CPU, fp32; the networks are "
                        "exported to ONNX at start-up; same maps to 1e-4, 2-2.8x faster on a 2-core CPU, see "
                        "documentation/explanation/performance.md; needs pip install -e \".[onnx]\"). Recorded in "
                        "each map's sidecar")


def median_filter_size(text: str) -> int:
    """An argparse type: 0 (or 1: no filter) or an odd cube side."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be 0 (none) or an odd integer, got {text!r}") from None
    if value < 0 or (value > 1 and value % 2 == 0):
        raise argparse.ArgumentTypeError(f"must be 0 (none) or an odd integer (a centred cube), got {value}")
    return value


# Flags of trained models only, with the value that means "not given" (model-free scores refuse the rest).
MODEL_ONLY_FLAGS = {"folds": ("-f", None), "seeds": ("--seeds", None), "levels": ("--levels", None),
                    "multistep_step": ("--multistep_step", None), "tile_step": ("--tile_step", None),
                    "batch_windows": ("--batch_windows", None), "compile": ("--compile", "auto"),
                    "trainer": ("-tr", "DisyreTrainer"), "checkpoint": ("-chk", "final"),
                    "precision": ("--precision", None), "backend": ("--backend", "torch")}


def refuse_flags_that_do_nothing(args: argparse.Namespace, score: str | None) -> None:
    """A flag the score would silently ignore is refused in one line. ``score`` None: the trainer's
    own, not known before the models are read (then only what no model score uses)."""
    from disyre_v2.errors import UserError

    named = f"--score {score}" if args.score is not None else (
        f"--score {score} (the trainer's own)" if score else "the trainer's own score")
    for flag, dest in (("--channel", "channel"), ("--direction", "direction")):
        if getattr(args, dest, None) is not None and score != "intensity":
            raise UserError(f"{flag} is for --score intensity, not {named}",
                            fix=f"leave out {flag}, or give --score intensity")
    if score in MODEL_FREE_SCORES:
        for dest, (flag, unset) in MODEL_ONLY_FLAGS.items():
            if getattr(args, dest) != unset:
                raise UserError(f"{flag} is for the scores of trained models; {named} uses no model",
                                fix=f"leave out {flag}")
        return
    if score is None:
        return
    if args.levels is not None and score not in ("ensemble", "singlestep"):
        raise UserError(f"--levels is for --score ensemble or singlestep (models with the level input), not {named}",
                        fix="leave out --levels")
    if args.multistep_step is not None and score != "multistep":
        raise UserError(f"--multistep_step is for --score multistep, not {named}", fix="leave out --multistep_step")


def choose_model(args: argparse.Namespace) -> None:
    """-m MODEL_FOLDER, or -d and -c (with -tr, -p): one way of naming the model, refused in one line
    otherwise. With -m, ``args.configuration`` becomes the folder's; the unset -tr, -p and -chk get their
    defaults."""
    from disyre_v2.errors import UserError

    if args.model is not None:
        given = [flag for flag, dest in (("-d", "dataset"), ("-c", "configuration"), ("-tr", "trainer"),
                                         ("-p", "plans")) if getattr(args, dest) is not None]
        if given:
            raise UserError(f"-m names the model folder itself; {', '.join(given)} would name another",
                            fix=f"leave out {' '.join(given)}, or leave out -m")
        from disyre_v2.model_sharing.local import open_model_folder

        folder = open_model_folder(args.model)
        args.configuration = folder.configuration
        args.checkpoint = args.checkpoint or folder.checkpoint
    else:
        missing = [flag for flag, dest in (("-d", "dataset"), ("-c", "configuration")) if getattr(args, dest) is None]
        if missing:
            raise UserError(f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} required to name the "
                            f"model", fix="give -d DATASET -c CONFIGURATION, or -m MODEL_FOLDER")
        args.checkpoint = args.checkpoint or "final"
    args.trainer = args.trainer or "DisyreTrainer"
    args.plans = args.plans or "DisyrePlans"


def check_device(device: str) -> None:
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("-device cuda was given but no CUDA device is available; use -device cpu.")


def model_folder(args: argparse.Namespace, dataset: str) -> Path:
    """``$DISYRE_results/DATASET/<trainer>__<plans>__<configuration>``, which must exist; or -m's folder."""
    from disyre_v2.paths import results_folder

    if getattr(args, "model", None) is not None:
        return Path(args.model)
    folder = results_folder() / dataset / f"{args.trainer}__{args.plans}__{args.configuration}"
    if not folder.is_dir():
        raise FileNotFoundError(f"No model folder {folder}: train it with disyre_v2_train {args.dataset} "
                                f"{args.configuration} FOLD -tr {args.trainer}.")
    return folder


def build_predictor(args: argparse.Namespace, folder: Path, folds=None):
    """The DisyrePredictor the flags describe (``folds`` overrides -f: calibration scores one fold at a time)."""
    from disyre_v2.inference.predictor import DisyrePredictor

    return DisyrePredictor.from_model_folder(
        folder, args.configuration, folds if folds is not None else args.folds, args.seeds, args.checkpoint,
        args.device, score=args.score, levels=args.levels, tile_step=args.tile_step,
        batch_windows=args.batch_windows, median_filter_size=args.median_filter,
        **({} if args.multistep_step is None else {"multistep_step": args.multistep_step}),
        compile={"auto": None, "on": True, "off": False}[args.compile], precision=args.precision,
        backend=getattr(args, "backend", "torch"))
