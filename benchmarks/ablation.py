"""The paper's Table 2 on the synthetic benchmark, with the CPU configuration 2d_small.

Anomaly generation {FPI, DAG} × anomaly score {unconditional, multistep, ensemble}, N seeds, plus
the plain intensity baselines; AP (mean ± std over seeds) and [Dice] per lesion kind, pooled over
the brain voxels of each kind's test cases (disyre_v2_evaluate's exact protocol). Run by hand:

    python benchmarks/ablation.py -o ablation_run --seeds 0 1 --budget 240

Everything (data, models, maps, table) goes under -o. Writes -o/ablation.md and prints it.
"""
from __future__ import annotations

import argparse
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
from disyre_v2.inference.predict_folder import predict_folder  # noqa: E402
from disyre_v2.inference.predictor import DisyrePredictor  # noqa: E402
from disyre_v2.planning.plan_and_preprocess_api import plan_and_preprocess  # noqa: E402
from disyre_v2.training.run_training import train  # noqa: E402

DATASET_ID = 991
CONFIGURATION = "2d_small"
# (row name, trainer, score)
CELLS = [
    ("Unconditional + FPI", "DisyreTrainerFPIUnconditional", "unconditional"),
    ("Multi-step + FPI", "DisyreTrainerFPI", "multistep"),
    ("Ensemble + FPI", "DisyreTrainerFPI", "ensemble"),
    ("Unconditional + DAG", "DisyreTrainerUnconditional", "unconditional"),
    ("Multi-step + DAG", "DisyreTrainer", "multistep"),
    ("Ensemble + DAG (DISYRE v2)", "DisyreTrainer", "ensemble"),
]
KINDS = ("brats", "atlas", "subtle")


def run(output: Path, seeds: list[int], budget: float, n_train: int, n_test: int) -> dict:
    for key, sub in (("DISYRE_raw", "raw"), ("DISYRE_preprocessed", "preprocessed"), ("DISYRE_results", "results")):
        (output / sub).mkdir(parents=True, exist_ok=True)
        os.environ[key] = str(output / sub)
    raw = output / "raw" / f"Dataset{DATASET_ID}_AblationSynthetic"
    if not raw.is_dir():
        make_synthetic_dataset(DATASET_ID, n_train, n_test, seed=1234, name="AblationSynthetic", num_processes=2)
    plan_and_preprocess(DATASET_ID, [CONFIGURATION], num_workers=2)
    results: dict = {"cells": {}, "settings": {"seeds": seeds, "budget_s": budget, "n_train": n_train,
                                               "n_test": n_test, "configuration": CONFIGURATION}}
    trained: dict = {}
    for name, trainer, score in CELLS:
        for seed in seeds:
            key = (trainer, seed)
            if key not in trained:
                started = time.perf_counter()
                run_folder = output / "results" / raw.name / f"{trainer}__DisyrePlans__{CONFIGURATION}" / f"fold_all_seed_{seed}"
                if not (run_folder / "checkpoint_final.pth").is_file():
                    run_folder = train(DATASET_ID, CONFIGURATION, "all", trainer=trainer, seed=seed, time_budget_s=budget)
                trained[key] = (run_folder, time.perf_counter() - started)
            run_folder = trained[key][0]
            predictor = DisyrePredictor.from_model_folder(run_folder.parent, CONFIGURATION, seeds=[seed], score=score)
            maps = output / "maps" / f"{trainer}_{score}_seed{seed}"
            predict_folder(predictor, raw / "imagesTs", maps, resume=True)
            summary = evaluate_folders(maps, raw / "labelsTs", progress=False)
            steps = json.loads((run_folder / "debug.json").read_text())
            cell = results["cells"].setdefault(name, {"trainer": trainer, "score": score, "runs": []})
            cell["runs"].append({"seed": seed, "all": [summary["pooled"]["average_precision"], summary["pooled"]["best_dice"]],
                                 **{k: [summary["per_kind"][k]["average_precision"], summary["per_kind"][k]["best_dice"]]
                                    for k in KINDS if k in summary.get("per_kind", {})},
                                 "arguments": steps["arguments"]})
    results["baselines"] = synthetic_baselines.evaluate(raw)
    (output / "ablation.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def _mean_std(values: list[float]) -> str:
    values = [v for v in values if v is not None and not np.isnan(v)]
    if not values:
        return "-"
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def markdown(results: dict) -> str:
    groups = ("all",) + KINDS
    lines = ["| method | " + " | ".join(f"{g} AP" for g in groups) + " | " + " | ".join(f"{g} [Dice]" for g in groups) + " |",
             "| --- |" + " ---: |" * (2 * len(groups))]
    for name, cell in results["cells"].items():
        aps = [_mean_std([run[g][0] for run in cell["runs"] if g in run]) for g in groups]
        dices = [_mean_std([run[g][1] for run in cell["runs"] if g in run]) for g in groups]
        lines.append(f"| {name} | " + " | ".join(aps) + " | " + " | ".join(dices) + " |")
    for baseline in synthetic_baselines.BASELINES:
        aps = [f"{results['baselines'][g][baseline][0]:.3f}" if g in results["baselines"] else "-" for g in groups]
        dices = [f"{results['baselines'][g][baseline][1]:.3f}" if g in results["baselines"] else "-" for g in groups]
        name = baseline.replace("|", "\\|")  # a literal pipe would split the markdown cell
        lines.append(f"| baseline: {name} | " + " | ".join(aps) + " | " + " | ".join(dices) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", type=Path, default=Path("ablation_run"), help="working folder (default ./ablation_run)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="training seeds (default 0 1)")
    parser.add_argument("--budget", type=float, default=240.0, help="training time budget per model in seconds (default 240)")
    parser.add_argument("--n_train", type=int, default=24, help="healthy training cases (default 24)")
    parser.add_argument("--n_test", type=int, default=15, help="test cases (default 15)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    started = time.perf_counter()
    results = run(args.output.resolve(), args.seeds, args.budget, args.n_train, args.n_test)
    table = markdown(results)
    header = (f"Synthetic benchmark ({args.n_train} training, {args.n_test} test cases, 2 mm), configuration "
              f"{CONFIGURATION}, {args.budget:.0f} s of CPU training per model, seeds {args.seeds}; "
              f"AP mean ± std over seeds; wall time {time.perf_counter() - started:.0f} s.\n\n")
    (args.output / "ablation.md").write_text(header + table + "\n")
    print(header + table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
