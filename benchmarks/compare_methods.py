"""The comparison methods side by side on the synthetic benchmark (documentation/explanation/comparison.md).

Every learned method is trained with ``disyre_v2_train``'s code on the same preprocessed data, with the
same configuration (``2d_small``: batch, patch, optimiser, learning rate, schedule) and the same number
of steps per model, for each seed; predicted with ``disyre_v2_predict``'s code (each method's own
score, the plans' median filter) and evaluated with ``disyre_v2_evaluate``'s. The model-free
intensity baselines (``--score intensity`` / ``joint_histogram``) are scored on the same cases. Run by
hand, e.g. reusing the detection-ablation folder (its DISYRE v2 runs are reused when present):

    python benchmarks/compare_methods.py -o det_run --steps 2000 --seeds 0 1 \
        --heldout det_heldout/Dataset993_HeldOut

Writes -o/compare_methods.{json,md}: per method mean ± spread (half the range) over seeds of AP and
best [Dice] (all voxels and per lesion kind), volume AUROC, the rim ratio and training seconds.
Every (method, seed) in compare_methods.json is skipped, so a killed run resumes, several processes
can share one folder (one per method or seed: each adds its runs under a lock), and a json copied
from another machine is continued; ``--table`` only writes the tables of what it holds.
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

try:
    import fcntl
except ImportError:  # Windows: no lock; the rename still keeps the file whole
    fcntl = None

sys.path.insert(0, str(Path(__file__).resolve().parent))
from detection_ablation import (  # noqa: E402
    KINDS, add_synthetic_dataset_flags, check_folder_flags, summary_row, synthetic_dataset_in)
from reproduce_paper import TABLE1  # noqa: E402  (the paper's Table 1 as printed)

from disyre_v2.evaluation.evaluator import evaluate_folders  # noqa: E402
from disyre_v2.inference.model_free import model_free_predictor  # noqa: E402
from disyre_v2.inference.model_loading import load_models  # noqa: E402
from disyre_v2.inference.predict_folder import predict_folder  # noqa: E402
from disyre_v2.inference.predictor import DisyrePredictor  # noqa: E402
from disyre_v2.planning.plans import load_plans  # noqa: E402
from disyre_v2.training.run_training import train  # noqa: E402

CONFIGURATION = "2d_small"
# Method → (trainer, score); None: the trainer's own score. The paper's Table 1 rows that can be built.
LEARNED = {"DISYRE v2": ("DisyreTrainer", None), "DISYRE v1": ("DisyreTrainerFPI", "multistep"),
           "DAE": ("DaeTrainer", None), "VAE": ("VaeTrainer", None), "r-VAE": ("RVaeTrainer", None),
           "FPI": ("FpiSegmentationTrainer", None), "PII": ("PiiTrainer", None),
           "CutPaste": ("CutPasteTrainer", None), "MOOD22": ("Mood22Trainer", None)}
# Method → (score, channel, direction) of the model-free baselines.
MODEL_FREE = {"intensity T2 (bright)": ("intensity", "T2", "bright"),
              "intensity T1 (dark)": ("intensity", "T1", "dark"),
              "joint T1/T2 histogram": ("joint_histogram", None, "bright")}


def evaluation_sets(output: Path, dataset: str, heldout: Path | None) -> list[tuple[str, Path]]:
    sets = [("test", output / "raw" / dataset)]
    return sets + ([("heldout", heldout)] if heldout is not None else [])


def maps_folder(output: Path, set_name: str, method: str, seed: int | None) -> Path:
    name = method.replace(" ", "_").replace("/", "-").replace("(", "").replace(")", "")
    return output / f"compare_maps_{set_name}" / (f"{name}_seed{seed}" if seed is not None else name)


def score_sets(predictor, sets, output: Path, method: str, seed: int | None) -> dict:
    rows = {}
    for set_name, raw in sets:
        maps = maps_folder(output, set_name, method, seed)
        predict_folder(predictor, raw / "imagesTs", maps, resume=True)
        rows[set_name] = summary_row(evaluate_folders(maps, raw / "labelsTs", progress=False))
    return rows


def recorded_training(run_folder: Path) -> tuple[int | None, float | None]:
    """The steps a run trained and, where one process trained them all (no --c), their wall seconds,
    from its debug.json: the training time of a model trained before, by disyre_v2_train."""
    info = json.loads((run_folder / "debug.json").read_text())
    steps = info.get("steps_trained")
    whole = steps is not None and info.get("session_steps") == steps
    return steps, (info.get("session_wall_s") if whole else None)


def train_or_continue(run_folder: Path, dataset: str, trainer: str, seed: int, steps: int, device: str) -> float | None:
    """Train one model, or continue it from checkpoint_latest.pth where a killed run left one (as
    ``disyre_v2_train --c``). Returns the training's wall seconds; None for a continued run, whose
    time would count its last part only."""
    continuing = (run_folder / "checkpoint_latest.pth").is_file()
    if continuing:
        logging.info("%s holds checkpoint_latest.pth: continuing that training; its time is not recorded.",
                     run_folder)
    started = time.perf_counter()
    train(dataset, CONFIGURATION, "all", trainer=trainer, seed=seed, num_steps=steps, device=device,
          resume=continuing)
    return None if continuing else time.perf_counter() - started


def run_learned(output: Path, dataset: str, method: str, seed: int, steps: int, sets, device: str = "cpu") -> dict:
    trainer, score = LEARNED[method]
    model_folder = output / "results" / dataset / f"{trainer}__DisyrePlans__{CONFIGURATION}"
    run_folder = model_folder / f"fold_all_seed_{seed}"
    seconds = None
    if not (run_folder / "checkpoint_final.pth").is_file():
        seconds = train_or_continue(run_folder, dataset, trainer, seed, steps, device)
    steps_trained, recorded_seconds = recorded_training(run_folder)
    seconds = seconds if seconds is not None else recorded_seconds
    if steps_trained is not None and steps_trained != steps:
        logging.warning("%s seed %d was trained for %s steps, not %d.", method, seed, steps_trained, steps)
    predictor = DisyrePredictor(load_plans(model_folder), CONFIGURATION,
                                load_models(model_folder, CONFIGURATION, seeds=[seed], device=device),
                                score=score, device=device)
    return {"method": method, "seed": seed, "steps": steps_trained, "train_s": seconds,
            **score_sets(predictor, sets, output, method, seed)}


def run_model_free(output: Path, dataset: str, method: str, sets) -> dict:
    score, channel, direction = MODEL_FREE[method]
    predictor = model_free_predictor(load_plans(output / "preprocessed" / dataset / "plans.json"), CONFIGURATION,
                                     score, output / "raw" / dataset,
                                     output / "results" / dataset / f"ModelFree__DisyrePlans__{CONFIGURATION}",
                                     channel=channel, direction=direction)
    return {"method": method, "seed": None, **score_sets(predictor, sets, output, method, None)}


def read_runs(results_path: Path) -> list[dict]:
    """The runs compare_methods.json holds (none when it is missing)."""
    if not results_path.is_file():
        return []
    try:
        return json.loads(results_path.read_text())["runs"]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{results_path} is not a compare_methods.json ({error}); move it away to start "
                         "the comparison over, or restore it from a copy") from None


def record_run(results_path: Path, result: dict, steps: int) -> None:
    """Add one run to compare_methods.json, re-read under a lock and replaced by a rename, so that
    several processes sharing one working folder (one per method or seed, each with its own --methods
    or --seeds) keep each other's runs and a killed write leaves the old file whole."""
    with open(results_path.with_name(results_path.name + ".lock"), "w") as lock:
        if fcntl is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)
        runs = read_runs(results_path)
        same = [r for r in runs if r["method"] == result["method"] and r["seed"] == result["seed"]]
        runs = [r for r in runs if r not in same]
        if result.get("train_s") is None and same and same[0].get("train_s") is not None:
            result = {**result, "train_s": same[0]["train_s"]}  # scored again for a new set: trained before
        staged = results_path.with_name(results_path.name + ".tmp")
        staged.write_text(json.dumps({"steps": steps, "configuration": CONFIGURATION, "runs": runs + [result]},
                                     indent=2) + "\n")
        staged.replace(results_path)


def _cell(values: list) -> str:
    """mean ± half the range over seeds (one value: the value)."""
    values = [v for v in values if v is not None and not np.isnan(v)]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.mean(values):.3f} ± {(max(values) - min(values)) / 2:.3f}"


def markdown(runs: list[dict], set_name: str) -> str:
    lines = ["| method | seeds | AP all | [Dice] all | glioma-like AP [Dice] | stroke-like AP [Dice] | subtle AP [Dice] "
             "| volume AUROC | rim ratio | training s per seed |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for method in list(LEARNED) + list(MODEL_FREE):
        rows = [r[set_name] for r in runs if r["method"] == method and set_name in r]
        if not rows:
            continue
        kind_cells = []
        for kind in KINDS:
            kind_cells.append(f"{_cell([r[kind][0] for r in rows if kind in r])} "
                              f"[{_cell([r[kind][1] for r in rows if kind in r])}]")
        seconds = [r["train_s"] for r in runs if r["method"] == method and r.get("train_s")]
        lines.append(f"| {method} | {len(rows) if method in LEARNED else '-'} | {_cell([r['all'][0] for r in rows])} | "
                     f"{_cell([r['all'][1] for r in rows])} | {' | '.join(kind_cells)} | "
                     f"{_cell([r['volume_auroc'] for r in rows])} | "
                     f"{_cell([r['rim_ratio'] for r in rows])} | {f'{np.mean(seconds):.0f}' if seconds else '-'} |")
    return "\n".join(lines)


# Our method names → the paper's Table 1 rows; the benchmark's lesion kinds → the paper's test sets they
# stand for (glioma-like: bright in T2, BraTS's analogue; stroke-like: T1-dark, ATLAS's).
PAPER_ROW = {"DISYRE v1": "DISYRE (v1)"}
PAPER_COLUMNS = (("BraTS-T2", 4), ("BraTS-T1", 2), ("ATLAS", 0))  # (test set, index of its AP in Method.paper)


def beside_paper(runs: list[dict], set_name: str) -> str:
    """Each learned method of the paper's Table 1 with our figures on one set (means over seeds, AP
    [Dice]) beside the paper's (AP [Dice] as printed); a method without runs on the set says so."""
    printed = {m.row: m.paper for m in TABLE1}
    paper = {m: printed[PAPER_ROW.get(m, m)] for m in LEARNED if PAPER_ROW.get(m, m) in printed}
    lines = ["| method | seeds | ours: glioma-like | ours: stroke-like | ours: all | ours: volume AUROC | "
             + " | ".join(f"paper: {name}" for name, _ in PAPER_COLUMNS) + " |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for method in sorted(paper, key=lambda m: -paper[m][PAPER_COLUMNS[0][1]]):  # the paper's BraTS-T2 order
        figures = paper[method]
        theirs = " | ".join(f"{figures[i]:.2f} [{figures[i + 1]:.2f}]" for _, i in PAPER_COLUMNS)
        rows = [r[set_name] for r in runs if r["method"] == method and set_name in r]
        if not rows:
            lines.append(f"| {method} | 0 | not run on this set | | | | {theirs} |")
            continue

        def mean(key: str, index: int) -> float:
            return float(np.mean([r[key][index] for r in rows if key in r]))

        ours = " | ".join(f"{mean(key, 0):.3f} [{mean(key, 1):.3f}]" for key in ("brats", "atlas", "all"))
        lines.append(f"| {method} | {len(rows)} | {ours} | {np.mean([r['volume_auroc'] for r in rows]):.3f} | "
                     f"{theirs} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", type=Path, default=Path("compare_methods_run"),
                        help="working folder (default ./compare_methods_run)")
    parser.add_argument("--methods", nargs="+", default=list(LEARNED) + list(MODEL_FREE),
                        choices=list(LEARNED) + list(MODEL_FREE), help="methods to run (default: all)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="training seeds (default 0 1)")
    parser.add_argument("--steps", type=int, default=2000, help="training steps per model (default 2000)")
    add_synthetic_dataset_flags(parser)
    parser.add_argument("--heldout", type=Path, default=None,
                        help="a second synthetic raw dataset folder whose test cases every method also scores")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="training and prediction device of the learned methods (default cpu; r-VAE's restoration "
                        "(500 gradient steps per window) needs cuda in practice: hours per test volume on a CPU)")
    parser.add_argument("--table", action="store_true",
                        help="only write the tables of the runs compare_methods.json holds; train and predict nothing")
    args = parser.parse_args(argv)
    check_folder_flags(parser, args)
    if args.device == "cuda" and not args.table and not torch.cuda.is_available():
        parser.error("--device cuda was given but this machine has no CUDA device; use --device cpu")
    try:
        read_runs(args.output.resolve() / "compare_methods.json")  # a damaged file: refused before any work
    except ValueError as error:
        parser.error(str(error))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    output = args.output.resolve()
    dataset = synthetic_dataset_in(output, args, create=not args.table)
    sets = evaluation_sets(output, dataset, args.heldout.resolve() if args.heldout else None)
    results_path = output / "compare_methods.json"
    # The quick model-free baselines first, then every learned method's first seed, then the next seed.
    jobs = [(m, None) for m in args.methods if m in MODEL_FREE]
    jobs += [(m, seed) for seed in args.seeds for m in args.methods if m in LEARNED]
    for method, seed in [] if args.table else jobs:
        if any(r["method"] == method and r["seed"] == seed and all(name in r for name, _ in sets)
               for r in read_runs(results_path)):
            continue  # done on every set (a run without a newly given --heldout scores that set now)
        result = (run_learned(output, dataset, method, seed, args.steps, sets, args.device) if method in LEARNED
                  else run_model_free(output, dataset, method, sets))
        record_run(results_path, result, args.steps)
        logging.info("%s seed %s: %s", method, seed, json.dumps(result["test"]))
    runs = read_runs(results_path)
    tables = []
    for set_name, raw in sets:
        tables.append(f"### {set_name}: {raw.name}, configuration {CONFIGURATION}, {args.steps} steps per model, "
                      f"seeds {' '.join(map(str, args.seeds))}; mean ± half the range over seeds\n\n"
                      + markdown(runs, set_name)
                      + "\n\nThe same set beside the paper's Table 1 (ours: AP [Dice], mean over seeds; the paper's: real "
                        "scans, AP [Dice] as printed)\n\n" + beside_paper(runs, set_name))
    text = "\n\n".join(tables) + "\n"
    (output / "compare_methods.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:  # every finished run is in compare_methods.json; the same command continues
        print("compare_methods.py: interrupted; run the same command again to continue", file=sys.stderr)
        raise SystemExit(130)
