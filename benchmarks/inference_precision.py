"""The anomaly maps of one trained model predicted in fp32 and under bf16 autocast, side by side
(issue 26, point 3: what ``disyre_v2_predict --precision`` changes). Run by hand:

    python benchmarks/inference_precision.py -o /tmp/precision_run --steps 2000

It makes (or reuses) the synthetic benchmark Dataset992 under -o exactly as
``detection_ablation.py`` does (same flags, same defaults), trains (or reuses) one ``2d_small``
DisyreTrainer model on all its healthy training cases, predicts the test cases with that model in
both precisions (``disyre_v2_predict``'s code: plans' median filter, maps on the input grid),
evaluates both with ``disyre_v2_evaluate``'s code and prints one table: maximum and mean
|fp32 − bf16| over brain voxels, the same relative to the fp32 map's 99.9th brain percentile, the
largest change of a case's volume score (mean of its top 1 %), AP, best Dice, volume AUROC and the
CPU seconds per case of each precision. bf16 autocast runs on a CPU too (``torch.autocast("cpu")``),
so the figures need no GPU; ``--device cuda`` measures the same on a GPU.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from detection_ablation import (  # noqa: E402
    add_synthetic_dataset_flags, check_folder_flags, synthetic_dataset_in)

from disyre_v2.evaluation.evaluator import evaluate_folders  # noqa: E402
from disyre_v2.imageio.reader import read_image  # noqa: E402
from disyre_v2.inference.model_loading import load_models  # noqa: E402
from disyre_v2.inference.predict_folder import predict_folder  # noqa: E402
from disyre_v2.inference.predictor import DisyrePredictor  # noqa: E402
from disyre_v2.inference.volume_score import volume_score  # noqa: E402
from disyre_v2.planning.plans import load_plans  # noqa: E402
from disyre_v2.training.run_training import train  # noqa: E402

CONFIGURATION = "2d_small"
PRECISIONS = ("fp32", "bf16")


def map_differences(first: Path, second: Path) -> dict:
    """Per-voxel |first − second| over the brain (voxels where either map or the mask is non-zero)."""
    max_abs, sum_abs, count, max_rel, max_volume = 0.0, 0.0, 0, 0.0, 0.0
    for path in sorted(first.glob("*.nii.gz")):
        a, _ = read_image(path)
        b, _ = read_image(second / path.name)
        brain = (a != 0) | (b != 0)
        diff = np.abs(a[brain].astype(np.float64) - b[brain])
        scale = float(np.percentile(a[brain], 99.9)) if brain.any() else 1.0
        max_abs = max(max_abs, float(diff.max(initial=0.0)))
        max_rel = max(max_rel, float(diff.max(initial=0.0)) / max(scale, 1e-12))
        sum_abs += float(diff.sum())
        count += int(brain.sum())
        max_volume = max(max_volume, abs(volume_score(a, brain) - volume_score(b, brain)))
    return {"max_abs": max_abs, "mean_abs": sum_abs / max(count, 1), "max_rel_p999": max_rel,
            "max_volume_score_change": max_volume}


def first_cases(raw: Path, subset: Path, count: int) -> Path:
    """A raw dataset folder holding the first ``count`` test cases of ``raw`` (symbolic links)."""
    cases = sorted(p.name[:-len("_0000.nii.gz")] for p in (raw / "imagesTs").glob("*_0000.nii.gz"))[:count]
    for sub in ("imagesTs", "labelsTs", "masksTs"):
        (subset / sub).mkdir(parents=True, exist_ok=True)
        for path in (raw / sub).glob("*.nii.gz"):
            case = path.name[:-len(".nii.gz")].rsplit("_", 1)[0] if sub == "imagesTs" else path.name[:-len(".nii.gz")]
            if case in cases and not (subset / sub / path.name).exists():
                (subset / sub / path.name).symlink_to(path)
    for name in ("dataset.json", "synthetic_cases.json"):
        if (raw / name).is_file() and not (subset / name).exists():
            (subset / name).symlink_to(raw / name)
    return subset


def _trained_steps(run_folder: Path, planned: int) -> int | str:
    """The steps the checkpoint was trained for (a --time_budget run may stop before ``planned``)."""
    checkpoint = torch.load(run_folder / "checkpoint_final.pth", map_location="cpu", weights_only=True)
    for key in ("step", "num_steps", "current_step"):
        if isinstance(checkpoint.get(key), int):
            return checkpoint[key]
    return planned


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", type=Path, default=Path("inference_precision_run"),
                        help="working folder (default ./inference_precision_run); a detection-ablation folder is "
                        "reused as it is")
    parser.add_argument("--steps", type=int, default=2000, help="training steps of the model (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    parser.add_argument("--time_budget", type=float, default=None, metavar="SECONDS",
                        help="train within this many seconds (disyre_v2_train --time_budget; the table states the "
                        "steps actually trained)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="device of the predictor (default cpu)")
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=PRECISIONS,
                        help="precisions this process predicts (default both); two processes may predict one each "
                        "side by side, and a last call with both prints the table from their maps")
    parser.add_argument("--test_cases", type=int, default=None, metavar="N",
                        help="score only the first N test cases (default: all)")
    parser.add_argument("--heldout", type=Path, default=None, help="a second raw synthetic dataset folder to score too")
    add_synthetic_dataset_flags(parser)
    args = parser.parse_args(argv)
    check_folder_flags(parser, args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    output = args.output.resolve()
    dataset = synthetic_dataset_in(output, args)
    model_folder = output / "results" / dataset / f"DisyreTrainer__DisyrePlans__{CONFIGURATION}"
    run_folder = model_folder / f"fold_all_seed_{args.seed}"
    if not (run_folder / "checkpoint_final.pth").is_file():
        train(dataset, CONFIGURATION, "all", seed=args.seed, num_steps=args.steps, time_budget_s=args.time_budget)
    plans = load_plans(model_folder)
    models = load_models(model_folder, CONFIGURATION, seeds=[args.seed], device=args.device)
    test = output / "raw" / dataset
    if args.test_cases:
        test = first_cases(test, output / f"raw_first{args.test_cases}" / dataset, args.test_cases)
    sets = [("test", test)] + ([("heldout", args.heldout.resolve())] if args.heldout else [])
    rows = []
    for set_name, raw in sets:
        folders = {}
        results = {}
        for precision in PRECISIONS:
            folder = output / f"precision_maps_{set_name}{'' if set_name != 'test' or not args.test_cases else f'_first{args.test_cases}'}" / f"{precision}_seed{args.seed}"
            folders[precision] = folder
            timing_file = folder / "timing.json"
            if precision in args.precisions and not timing_file.is_file():
                predictor = DisyrePredictor(plans, CONFIGURATION, models, device=args.device, precision=precision)
                cases = len(list((raw / "imagesTs").glob("*_0000.nii.gz")))
                wall, cpu = time.perf_counter(), time.process_time()
                predict_folder(predictor, raw / "imagesTs", folder, resume=True)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                timing_file.write_text(json.dumps({"cpu_s_per_case": cpu / cases, "wall_s_per_case": wall / cases,
                                                   "torch_threads": torch.get_num_threads()}) + "\n")
            if not timing_file.is_file():
                continue  # predicted by another process (--precisions), not yet finished
            summary = evaluate_folders(folder, raw / "labelsTs", progress=False)
            results[precision] = {"ap": summary["pooled"]["average_precision"],
                                  "dice": summary["pooled"]["best_dice"],
                                  "volume_auroc": summary["volume_level"]["auroc"],
                                  **json.loads(timing_file.read_text())}
        if len(results) < len(PRECISIONS):
            print(f"{set_name}: only {', '.join(results) or 'no precision'} predicted so far; run again with both.")
            return 0
        rows.append((set_name, raw.name, results, map_differences(folders["fp32"], folders["bf16"])))
    print(f"\n{CONFIGURATION}, DisyreTrainer seed {args.seed}, {_trained_steps(run_folder, args.steps)} steps, device {args.device}; "
          f"maps of disyre_v2_predict (plans' median filter), on the input grid.\n")
    print("| set | precision | AP | best Dice | volume AUROC | CPU s per case | wall s per case |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for set_name, name, results, _ in rows:
        for precision in PRECISIONS:
            r = results[precision]
            print(f"| {name} | {precision} | {r['ap']:.4f} | {r['dice']:.4f} | {r['volume_auroc']:.4f} | "
                  f"{r['cpu_s_per_case']:.1f} | {r['wall_s_per_case']:.1f} |")
    print("\n| set | max \\|fp32 − bf16\\| | mean \\|fp32 − bf16\\| | max ÷ p99.9 of the fp32 map "
          "| largest volume-score change |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for _, name, _, d in rows:
        print(f"| {name} | {d['max_abs']:.4g} | {d['mean_abs']:.3g} | {d['max_rel_p999']:.3g} | "
              f"{d['max_volume_score_change']:.3g} |")
    (output / "inference_precision.json").write_text(json.dumps(
        [{"set": n, "results": r, "differences": d} for _, n, r, d in rows], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
