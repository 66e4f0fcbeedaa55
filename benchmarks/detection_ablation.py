"""Detection-quality ablations on the synthetic benchmark (issue: the false-positive rim).

Each variant is the configuration ``2d_small`` with a few plans entries changed (editing the plans
is a supported way to run an experiment): the variant becomes a configuration of its own in
plans.json, named ``2d_small__<variant>``, sharing the preprocessed data. Every variant is trained
for the same number of steps and seeds, predicted with ``disyre_v2_predict``'s code and evaluated with
``disyre_v2_evaluate``'s, error analysis included; a variant may also change only the predictor.
The model-free intensity baselines are evaluated on the same test cases. Run by hand:

    python benchmarks/detection_ablation.py -o det_run --steps 2000 --seeds 0 --variants paper mirror_only

Runs are reused when their checkpoint_final.pth and maps exist, so several processes may train
different variants side by side (``OMP_NUM_THREADS=1`` each on a 2-core machine) and a last call
with ``--table`` collects every finished run into -o/detection_ablation.{json,md}.
"""
from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import synthetic_baselines  # noqa: E402

from disyre_v2.dataset_conversion.synthetic.builder import make_synthetic_dataset  # noqa: E402
from disyre_v2.evaluation.evaluator import evaluate_folders  # noqa: E402
from disyre_v2.inference.model_loading import load_models  # noqa: E402
from disyre_v2.inference.predict_folder import predict_folder  # noqa: E402
from disyre_v2.inference.predictor import DisyrePredictor  # noqa: E402
from disyre_v2.planning.plan_and_preprocess_api import plan_and_preprocess  # noqa: E402
from disyre_v2.planning.plans import load_plans, save_plans  # noqa: E402
from disyre_v2.training.run_training import train  # noqa: E402

BASE_CONFIGURATION = "2d_small"
KINDS = ("brats", "atlas", "subtle")
_NO_AUGMENTATION = {f"augmentation.{key}": 0.0 for key in (
    "mirror_probability", "rotation_probability", "scale_probability", "elastic_probability",
    "brightness_probability", "gamma_probability", "noise_probability", "blur_probability")}


def _only(*keys: str) -> dict:
    """No augmentation except mirroring and the listed probabilities (at the paper's values)."""
    overrides = dict(_NO_AUGMENTATION)
    for key in ("mirror_probability",) + keys:
        overrides.pop(f"augmentation.{key}")
    return overrides


# name -> (description, plans overrides of the configuration, trainer). A variant whose overrides all
# lie under "inference." changes only the predictor: it reuses the model trained on the base configuration.
VARIANTS: dict[str, tuple[str, dict, str]] = {
    "paper": ("the paper's augmentation list (the configuration as planned)", {}, "DisyreTrainer"),
    "no_augmentation": ("no augmentation at all", _NO_AUGMENTATION, "DisyreTrainer"),
    "mirror_only": ("mirroring only", _only(), "DisyreTrainer"),
    "mirror_spatial": ("mirroring + rotation, scaling, elastic (p 0.1 each)",
                       _only("rotation_probability", "scale_probability", "elastic_probability"), "DisyreTrainer"),
    "mirror_intensity": ("mirroring + brightness and gamma (p 0.15 each)",
                         _only("brightness_probability", "gamma_probability"), "DisyreTrainer"),
    "mirror_noise": ("mirroring + Gaussian noise in the brain (p 0.15)", _only("noise_probability"), "DisyreTrainer"),
    "mirror_blur": ("mirroring + Gaussian blur (p 0.15)", _only("blur_probability"), "DisyreTrainer"),
    "clean50": ("the paper's list; half of the samples stay clean at the level t they drew",
                {"anomaly_synthesis.anomaly_probability": 0.5}, "DisyreTrainer"),
    "brain_loss": ("the paper's list; the loss averaged over brain pixels only", {"training.loss_region": "brain"},
                   "DisyreTrainer"),
    "cross_boundary": ("the paper's list; anomalies may reach across the brain boundary",
                       {"anomaly_synthesis.restrict_to_brain": False}, "DisyreTrainer"),
    "inference_windows": ("the paper's list; training windows placed as the predictor places them (any "
                          "position on the slice holding brain) instead of inside the slice's brain box",
                          {"batch.crop_mode": "inference_windows"}, "DisyreTrainer"),
    "paper_no_foreground_weighting": ("the paper model, windows blended without the brain-fraction weight f",
                                      {"inference.foreground_weighting": False}, "DisyreTrainer"),
}


def predictor_only(variant: str) -> bool:
    overrides = VARIANTS[variant][1]
    return bool(overrides) and all(key.startswith("inference.") for key in overrides)


def _set(configuration: dict, dotted: str, value) -> None:
    node = configuration
    *path, last = dotted.split(".")
    for key in path:
        node = node[key]
    node[last] = value  # a key that older plans lack (an optional one) is added


def configuration_name(variant: str) -> str:
    if not VARIANTS[variant][1] or predictor_only(variant):
        return BASE_CONFIGURATION
    return f"{BASE_CONFIGURATION}__{variant}"


def add_variant_configurations(preprocessed: Path, variants: list[str]) -> None:
    """Write each variant's configuration into plans.json (the base configuration stays as planned)."""
    plans = load_plans(preprocessed)
    base = plans["configurations"][BASE_CONFIGURATION]
    for variant in variants:
        overrides = VARIANTS[variant][1]
        if not overrides or predictor_only(variant):
            continue
        configuration = copy.deepcopy(base)
        for dotted, value in overrides.items():
            _set(configuration, dotted, value)
        plans["configurations"][configuration_name(variant)] = configuration
    save_plans(plans, preprocessed)


def run_variant(output: Path, dataset: str, variant: str, seed: int, steps: int) -> dict:
    _, overrides, trainer = VARIANTS[variant]
    configuration = configuration_name(variant)
    model_folder = output / "results" / dataset / f"{trainer}__DisyrePlans__{configuration}"
    run_folder = model_folder / f"fold_all_seed_{seed}"
    started = time.perf_counter()
    if not (run_folder / "checkpoint_final.pth").is_file():
        train(dataset, configuration, "all", trainer=trainer, seed=seed, num_steps=steps)
    trained_s = time.perf_counter() - started
    maps = output / "maps" / f"{variant}_seed{seed}"
    plans = load_plans(model_folder)
    if predictor_only(variant):
        for dotted, value in overrides.items():
            _set(plans["configurations"][configuration], dotted, value)
    models = load_models(model_folder, configuration, seeds=[seed])
    predictor = DisyrePredictor(plans, configuration, models)
    raw = output / "raw" / dataset
    predict_folder(predictor, raw / "imagesTs", maps, resume=True)
    summary = evaluate_folders(maps, raw / "labelsTs", progress=False)
    return {"variant": variant, "seed": seed, "steps": steps, "train_s": trained_s, "summary": summary_row(summary)}


def summary_row(summary: dict) -> dict:
    fp = summary["error_analysis"]["false_positives"]
    row = {"all": [summary["pooled"]["average_precision"], summary["pooled"]["best_dice"]],
           "volume_auroc": summary["volume_level"]["auroc"],
           "rim_share": fp["rim_share"]["top_0.1pct"], "rim_brain_share": fp["rim_brain_share"],
           "rim_ratio": fp["rim_ratio"]}
    for kind in KINDS:
        if kind in summary.get("per_kind", {}):
            k = summary["per_kind"][kind]
            row[kind] = [k["average_precision"], k["best_dice"]]
    return row


def collect(output: Path, dataset: str, steps: int) -> dict:
    """Every finished run under -o (maps evaluated), for the table."""
    runs = []
    for summary_path in sorted((output / "maps").glob("*_seed*/summary.json")):
        variant, seed = summary_path.parent.name.rsplit("_seed", 1)
        if variant in VARIANTS:
            runs.append({"variant": variant, "seed": int(seed),
                         "summary": summary_row(json.loads(summary_path.read_text()))})
    return {"steps": steps, "runs": runs, "baselines": synthetic_baselines.evaluate(output / "raw" / dataset)}


def _mean_std(values: list) -> str:
    values = [v for v in values if v is not None and not np.isnan(v)]
    if not values:
        return "-"
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def markdown(results: dict) -> str:
    header = ("| variant | seeds | AP all | glioma-like (brats) AP | stroke-like (atlas) AP | subtle AP | [Dice] all "
              "| volume AUROC | rim share of top 0.1 % (rim ratio) |")
    lines = [header, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for variant in VARIANTS:
        runs = [r["summary"] for r in results["runs"] if r["variant"] == variant]
        if not runs:
            continue
        cell = lambda key, i: _mean_std([r[key][i] for r in runs if key in r])  # noqa: E731
        rim = _mean_std([r["rim_share"] for r in runs])
        lines.append(f"| {variant} | {len(runs)} | {cell('all', 0)} | {cell('brats', 0)} | {cell('atlas', 0)} | "
                     f"{cell('subtle', 0)} | {cell('all', 1)} | {_mean_std([r['volume_auroc'] for r in runs])} | "
                     f"{rim} ({_mean_std([r['rim_ratio'] for r in runs])}) |")
    for baseline in synthetic_baselines.BASELINES:
        b = results["baselines"]
        get = lambda kind, i: f"{b[kind][baseline][i]:.3f}" if kind in b else "-"  # noqa: E731
        name = baseline.replace("|", "\\|")
        lines.append(f"| baseline: {name} | - | {get('all', 0)} | {get('brats', 0)} | {get('atlas', 0)} | "
                     f"{get('subtle', 0)} | {get('all', 1)} | - | - |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", type=Path, default=Path("detection_ablation_run"),
                        help="working folder (default ./detection_ablation_run)")
    parser.add_argument("-d", "--dataset_id", type=int, default=992, help="synthetic dataset id (default 992)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                        help="variants to run (default: all)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (default 0)")
    parser.add_argument("--steps", type=int, default=2000, help="training steps per model (default 2000)")
    parser.add_argument("--n_train", type=int, default=40, help="healthy training cases (default 40)")
    parser.add_argument("--n_test", type=int, default=24, help="test cases (default 24)")
    parser.add_argument("--data_seed", type=int, default=2026, help="seed of the synthetic dataset (default 2026)")
    parser.add_argument("--table", action="store_true", help="only collect finished runs into the table")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    output = args.output.resolve()
    for key, sub in (("DISYRE_raw", "raw"), ("DISYRE_preprocessed", "preprocessed"), ("DISYRE_results", "results")):
        (output / sub).mkdir(parents=True, exist_ok=True)
        os.environ[key] = str(output / sub)
    existing = sorted((output / "raw").glob(f"Dataset{args.dataset_id:03d}_*"))
    dataset = existing[0].name if existing else f"Dataset{args.dataset_id:03d}_DetectionAblation"
    if not args.table:
        if not existing:
            make_synthetic_dataset(args.dataset_id, args.n_train, args.n_test, seed=args.data_seed,
                                   name="DetectionAblation", num_processes=2)
        if not (output / "preprocessed" / dataset / "plans.json").is_file():
            plan_and_preprocess(args.dataset_id, [BASE_CONFIGURATION], num_workers=2)
        add_variant_configurations(output / "preprocessed" / dataset, args.variants)
        for variant in args.variants:
            for seed in args.seeds:
                result = run_variant(output, dataset, variant, seed, args.steps)
                logging.info("%s seed %d: %s", variant, seed, json.dumps(result["summary"]))
    results = collect(output, dataset, args.steps)
    (output / "detection_ablation.json").write_text(json.dumps(results, indent=2) + "\n")
    table = (f"Synthetic benchmark {dataset}, configuration {BASE_CONFIGURATION}, {args.steps} steps per model; "
             f"AP mean ± std over seeds.\n\n" + markdown(results))
    (output / "detection_ablation.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
