"""Detection-quality ablations on the synthetic benchmark (issue: the false-positive rim).

Each variant is the configuration ``2d_small`` with a few plans entries changed (editing the plans
is a supported way to run an experiment): the variant becomes a configuration of its own in
plans.json, named ``2d_small__<variant>``, sharing the preprocessed data. Every variant is trained
for the same number of steps and seeds, predicted with ``disyre_v2_predict``'s code and evaluated with
``disyre_v2_evaluate``'s, error analysis included; a variant may also change only the predictor.
The model-free intensity baselines are evaluated on the same test cases. Run by hand:

    python benchmarks/detection_ablation.py -o det_run --steps 2000 --seeds 0 1 --variants planned paper \
        --heldout det_heldout/Dataset993_HeldOut

(make the held-out set first with ``disyre_v2_make_synthetic_dataset -d 993 --n_train 1 --n_test 40 --seed 777
--lesion_free_fraction 0.3 --name HeldOut`` under ``DISYRE_raw=det_heldout``).

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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import synthetic_baselines  # noqa: E402

from disyre_v2.dataset_conversion.synthetic.builder import make_synthetic_dataset  # noqa: E402
from disyre_v2.evaluation.evaluator import evaluate_folders  # noqa: E402
from disyre_v2.inference.model_loading import load_models  # noqa: E402
from disyre_v2.inference.predict_folder import predict_folder  # noqa: E402
from disyre_v2.inference.predictor import DisyrePredictor  # noqa: E402
from disyre_v2.planning.defaults import AUGMENTATION  # noqa: E402
from disyre_v2.planning.plan_and_preprocess_api import plan_and_preprocess  # noqa: E402
from disyre_v2.planning.plans import FINGERPRINT_FILE, load_plans, save_plans  # noqa: E402
from disyre_v2.planning.planner import plan  # noqa: E402
from disyre_v2.preprocessing.preprocessor import preprocessing_signature  # noqa: E402
from disyre_v2.training.run_training import train  # noqa: E402

BASE_CONFIGURATION = "2d_small"
KINDS = ("brats", "atlas", "subtle")
AUGMENTATION_PROBABILITIES = ("mirror_probability", "rotation_probability", "scale_probability", "elastic_probability",
                              "brightness_probability", "gamma_probability", "noise_probability", "blur_probability")
# The paper's configuration: method_numbers.md's augmentation list and the raw (unfiltered) ensemble map.
PAPER = {**{f"augmentation.{key}": value for key, value in AUGMENTATION.items()}, "inference.median_filter_size": 0}


def _paper(**changes) -> dict:
    """The paper's configuration with some plans entries changed (dotted keys, "." -> "__")."""
    return {**PAPER, **{key.replace("__", "."): value for key, value in changes.items()}}


def _learning_rate(lr: str, why: str) -> "Variant":
    """Today's default (``planned``) trained at another peak learning rate, written as in the variant's name."""
    return Variant(f"learning rate {lr} ({why})", {"training.lr": float(lr)})


def _augmentation_only(*kept: str) -> dict:
    """The paper's configuration with every augmentation off except mirroring and ``kept`` (at the
    paper's probabilities)."""
    return {**PAPER, **{f"augmentation.{key}": 0.0 for key in AUGMENTATION_PROBABILITIES
                        if key not in ("mirror_probability",) + kept}}


@dataclass(frozen=True)
class Variant:
    description: str
    overrides: dict  # plans entries of the configuration; empty: 2d_small as planned now
    model_of: str | None = None  # reuse the model of that variant (only the predictor changes)
    trainer: str = "DisyreTrainer"


VARIANTS: dict[str, Variant] = {
    "planned": Variant("the configuration as the planner writes it now (the default)", {}),
    "paper": Variant("the paper's augmentation list, raw ensemble map (documentation/explanation/method_numbers.md)", PAPER),
    "no_augmentation": Variant("no augmentation at all", {**_augmentation_only(), "augmentation.mirror_probability": 0.0}),
    "mirror_only": Variant("mirroring only", _augmentation_only()),
    "mirror_spatial": Variant("mirroring + rotation, scaling, elastic (p 0.1 each)",
                              _augmentation_only("rotation_probability", "scale_probability", "elastic_probability")),
    "mirror_intensity": Variant("mirroring + brightness and gamma (p 0.15 each)",
                                _augmentation_only("brightness_probability", "gamma_probability")),
    "mirror_noise": Variant("mirroring + Gaussian noise in the brain (p 0.15)", _augmentation_only("noise_probability")),
    "mirror_blur": Variant("mirroring + Gaussian blur (p 0.15)", _augmentation_only("blur_probability")),
    "clean50": Variant("the paper's; half of the samples stay clean at the level t they drew",
                       _paper(anomaly_synthesis__anomaly_probability=0.5)),
    "inference_windows": Variant("the paper's; training windows placed as the predictor places them (anywhere on "
                                 "the slice, holding brain) instead of inside the slice's brain box",
                                 _paper(batch__crop_mode="inference_windows")),
    "brain_loss": Variant("the paper's; the loss averaged over brain pixels only", _paper(training__loss_region="brain")),
    "cross_boundary": Variant("the paper's; anomalies may reach across the brain boundary",
                              _paper(anomaly_synthesis__restrict_to_brain=False)),
    "paper_no_foreground_weighting": Variant("the paper's model, windows blended without the brain-fraction weight f",
                                             _paper(inference__foreground_weighting=False), model_of="paper"),
    "lr2e-4": _learning_rate("2e-4", "method_numbers.md, Training; the 2d_small default before this study"),
    "lr5e-4": _learning_rate("5e-4", "half the 2d_small default"),
    "lr2e-3": _learning_rate("2e-3", "twice the 2d_small default"),
    "small_shapes": Variant("anomaly shapes from 2 px (4 mm at 2 mm) instead of 5 px",
                            {"anomaly_synthesis.shape_size_range": [2, 22], "anomaly_synthesis.irregular_extent_range": [2.0, 40.0]}),
    "paper_median": Variant("the paper's model, map median-filtered (3 voxels)",
                            _paper(inference__median_filter_size=3), model_of="paper"),
}
# The same models with the map median-filtered: only the predictor changes.
for _base in ("no_augmentation", "mirror_only"):
    VARIANTS[f"{_base}_median"] = Variant(f"{VARIANTS[_base].description}, map median-filtered (3 voxels)",
                                          {**VARIANTS[_base].overrides, "inference.median_filter_size": 3},
                                          model_of=_base)


def _set(configuration: dict, dotted: str, value) -> None:
    node = configuration
    *path, last = dotted.split(".")
    for key in path:
        node = node[key]
    node[last] = value  # a key that older plans lack (an optional one) is added


def configuration_name(variant: str) -> str:
    """The plans configuration a variant trains (its own, or that of the model it reuses)."""
    owner = VARIANTS[variant].model_of or variant
    return BASE_CONFIGURATION if not VARIANTS[owner].overrides else f"{BASE_CONFIGURATION}__{owner}"


def add_variant_configurations(preprocessed: Path, variants: list[str]) -> None:
    """Write each variant's configuration into plans.json. The base configuration is refreshed from
    the current planner first, so that ``planned`` always means today's default even in a working
    folder planned by older code (its preprocessed arrays must still fit)."""
    plans = load_plans(preprocessed)
    fingerprint = json.loads((preprocessed / FINGERPRINT_FILE).read_text())
    fresh = plan(fingerprint, [BASE_CONFIGURATION])["configurations"][BASE_CONFIGURATION]
    stored = plans["configurations"][BASE_CONFIGURATION]
    if preprocessing_signature(stored) != preprocessing_signature(fresh):
        raise SystemExit(f"{preprocessed}: the planner now preprocesses {BASE_CONFIGURATION} differently; "
                         f"re-run the benchmark in a new -o folder.")
    if stored != fresh:
        logging.getLogger(__name__).warning("%s: %s refreshed from the current planner (the `planned` variant "
                                            "is today's default).", preprocessed / "plans.json", BASE_CONFIGURATION)
        plans["configurations"][BASE_CONFIGURATION] = fresh
    base = plans["configurations"][BASE_CONFIGURATION]
    for variant in variants:
        owner = VARIANTS[variant].model_of or variant
        if not VARIANTS[owner].overrides:
            continue
        configuration = copy.deepcopy(base)
        for dotted, value in VARIANTS[owner].overrides.items():
            _set(configuration, dotted, value)
        plans["configurations"][configuration_name(owner)] = configuration
    save_plans(plans, preprocessed)


def run_variant(output: Path, dataset: str, variant: str, seed: int, steps: int,
                heldout: Path | None = None) -> dict:
    spec = VARIANTS[variant]
    configuration = configuration_name(variant)
    model_folder = output / "results" / dataset / f"{spec.trainer}__DisyrePlans__{configuration}"
    run_folder = model_folder / f"fold_all_seed_{seed}"
    started = time.perf_counter()
    if not (run_folder / "checkpoint_final.pth").is_file():
        train(dataset, configuration, "all", trainer=spec.trainer, seed=seed, num_steps=steps,
              resume=(run_folder / "checkpoint_latest.pth").is_file())  # a killed training continues
    trained_s = time.perf_counter() - started
    plans = load_plans(model_folder)
    for dotted, value in spec.overrides.items():  # a reused model: the predictor's own entries
        if dotted.startswith("inference."):
            _set(plans["configurations"][configuration], dotted, value)
    predictor = DisyrePredictor(plans, configuration, load_models(model_folder, configuration, seeds=[seed]))
    rows = {}
    for name, raw in (("test", output / "raw" / dataset), ("heldout", heldout)):
        if raw is None:
            continue
        maps = output / ("maps" if name == "test" else "maps_heldout") / f"{variant}_seed{seed}"
        predict_folder(predictor, raw / "imagesTs", maps, resume=True)
        rows[name] = summary_row(evaluate_folders(maps, raw / "labelsTs", progress=False))
    return {"variant": variant, "seed": seed, "steps": steps, "train_s": trained_s, "summary": rows["test"],
            "heldout": rows.get("heldout")}


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


def collect(output: Path, raw: Path, steps: int, maps_folder: str = "maps") -> dict:
    """Every finished run under -o (maps evaluated), for the table."""
    runs = []
    for summary_path in sorted((output / maps_folder).glob("*_seed*/summary.json")):
        variant, seed = summary_path.parent.name.rsplit("_seed", 1)
        if variant in VARIANTS:
            runs.append({"variant": variant, "seed": int(seed),
                         "summary": summary_row(json.loads(summary_path.read_text()))})
    return {"steps": steps, "test_set": str(raw), "runs": runs, "baselines": synthetic_baselines.evaluate(raw)}


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


def add_synthetic_dataset_flags(parser: argparse.ArgumentParser) -> None:
    """The synthetic benchmark's size and seed (shared with compare_methods.py)."""
    parser.add_argument("-d", "--dataset_id", type=int, default=992, help="synthetic dataset id (default 992)")
    parser.add_argument("--n_train", type=int, default=40, help="healthy training cases (default 40)")
    parser.add_argument("--n_test", type=int, default=24, help="test cases (default 24)")
    parser.add_argument("--data_seed", type=int, default=2026, help="seed of the synthetic dataset (default 2026)")


def check_folder_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """One clear line, before anything is written, for a file given as -o or a --heldout that is no raw
    dataset folder (shared with compare_methods.py)."""
    if args.output.exists() and not args.output.is_dir():
        parser.error(f"-o {args.output} is a file; give a folder (it is created if missing)")
    if args.heldout is not None and not (args.heldout / "imagesTs").is_dir():
        parser.error(f"--heldout {args.heldout} holds no imagesTs folder; give a raw synthetic dataset folder, "
                     "e.g. made by disyre_v2_make_synthetic_dataset")


def synthetic_dataset_in(output: Path, args: argparse.Namespace, create: bool = True) -> str:
    """Point DISYRE_raw/_preprocessed/_results at ``output``'s folders; with ``create``, make and
    preprocess the synthetic dataset (``2d_small``) unless it is there. Returns the dataset's name."""
    for key, sub in (("DISYRE_raw", "raw"), ("DISYRE_preprocessed", "preprocessed"), ("DISYRE_results", "results")):
        (output / sub).mkdir(parents=True, exist_ok=True)
        os.environ[key] = str(output / sub)
    existing = sorted((output / "raw").glob(f"Dataset{args.dataset_id:03d}_*"))
    dataset = existing[0].name if existing else f"Dataset{args.dataset_id:03d}_DetectionAblation"
    if create:
        if not existing:
            make_synthetic_dataset(args.dataset_id, args.n_train, args.n_test, seed=args.data_seed,
                                   name="DetectionAblation", num_processes=2)
        if not (output / "preprocessed" / dataset / "plans.json").is_file():
            plan_and_preprocess(args.dataset_id, [BASE_CONFIGURATION], num_workers=2)
    return dataset


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", type=Path, default=Path("detection_ablation_run"),
                        help="working folder (default ./detection_ablation_run)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                        help="variants to run (default: all)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (default 0)")
    parser.add_argument("--steps", type=int, default=2000, help="training steps per model (default 2000)")
    add_synthetic_dataset_flags(parser)
    parser.add_argument("--heldout", type=Path, default=None,
                        help="a second synthetic raw dataset folder (other seed) whose test cases every model also "
                        "scores: the figures on data no choice was made on")
    parser.add_argument("--table", action="store_true", help="only collect finished runs into the table")
    args = parser.parse_args(argv)
    check_folder_flags(parser, args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    output = args.output.resolve()
    dataset = synthetic_dataset_in(output, args, create=not args.table)
    if not args.table:
        add_variant_configurations(output / "preprocessed" / dataset, args.variants)
        for variant in args.variants:
            for seed in args.seeds:
                result = run_variant(output, dataset, variant, seed, args.steps, args.heldout)
                logging.info("%s seed %d: %s", variant, seed, json.dumps(result["summary"]))
    sets = [("detection_ablation", "maps", output / "raw" / dataset)]
    if args.heldout is not None:
        sets.append(("detection_ablation_heldout", "maps_heldout", args.heldout.resolve()))
    for name, maps_folder, raw in sets:
        results = collect(output, raw, args.steps, maps_folder)
        (output / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
        table = (f"Test cases of {raw.name}, configuration {BASE_CONFIGURATION}, {args.steps} steps per model; "
                 f"mean ± std over seeds.\n\n" + markdown(results))
        (output / f"{name}.md").write_text(table + "\n")
        print(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
