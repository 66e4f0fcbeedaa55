"""Fine-tuning on a differently acquired site against training from scratch and against no fine-tuning
(issue 24, point 4), with the CPU configuration 2d_small. Run by hand:

    python benchmarks/fine_tuning.py -o fine_tuning_run [--source_steps 2000] [--steps 300] [--seeds 0]

Site A: ``disyre_v2_make_synthetic_dataset`` with the default acquisition; site B: a second set with
``--acquisition scanner_b`` (about twice the blur, 2-3x the noise, a stronger bias field) and other
subjects (another seed). A model is trained on A's healthy cases for --source_steps; then, on B's
healthy cases, for --steps each:

- ``fine-tuned``: ``train(..., pretrained_weights=A's checkpoint_final.pth)`` (disyre_v2_train
  --pretrained_weights), a new optimiser and learning-rate schedule from step 0;
- ``from scratch``: the same number of steps from a random initialisation;
- ``no fine-tuning``: A's model as it is.

Each scores B's test cases (disyre_v2_predict's default score) and is evaluated with
``disyre_v2.evaluation.evaluator.evaluate_folders``: pooled AP and volume-level AUROC. Everything goes
under -o (reused when present); writes -o/fine_tuning.md and prints it.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from disyre_v2.dataset_conversion.synthetic.builder import make_synthetic_dataset  # noqa: E402
from disyre_v2.evaluation.evaluator import evaluate_folders  # noqa: E402
from disyre_v2.inference.predict_folder import predict_folder  # noqa: E402
from disyre_v2.inference.predictor import DisyrePredictor  # noqa: E402
from disyre_v2.planning.plan_and_preprocess_api import plan_and_preprocess  # noqa: E402
from disyre_v2.training.run_training import train  # noqa: E402

CONFIGURATION = "2d_small"
TRAINER = "DisyreTrainer"
SITE_A, SITE_B = (981, "SiteA", "default", 11), (982, "SiteB", "scanner_b", 22)  # id, name, acquisition, data seed
ARMS = ("no fine-tuning", "from scratch", "fine-tuned")


def make_site(output: Path, site: tuple, n_train: int, n_test: int) -> Path:
    dataset_id, name, acquisition, seed = site
    if not (output / "raw" / f"Dataset{dataset_id}_{name}" / "dataset.json").is_file():
        make_synthetic_dataset(dataset_id, n_train, n_test, seed=seed, name=name, acquisition=acquisition,
                               num_processes=2, montage=False)
    if not (output / "preprocessed" / f"Dataset{dataset_id}_{name}" / "plans.json").is_file():
        plan_and_preprocess(dataset_id, [CONFIGURATION], num_workers=2, progress=False)
    return output / "raw" / f"Dataset{dataset_id}_{name}"


def run_folder(output: Path, site: tuple, seed: int) -> Path:
    dataset_id, name = site[:2]
    return output / "results" / f"Dataset{dataset_id}_{name}" / f"{TRAINER}__DisyrePlans__{CONFIGURATION}" / \
        f"fold_all_seed_{seed}"


def trained(output: Path, site: tuple, seed: int, steps: int, pretrained: Path | None = None) -> tuple[Path, float]:
    """The run folder (trained now unless its checkpoint_final.pth exists) and the seconds it took."""
    folder = run_folder(output, site, seed)
    started = time.perf_counter()
    if not (folder / "checkpoint_final.pth").is_file():
        folder = train(site[0], CONFIGURATION, "all", trainer=TRAINER, seed=seed, num_steps=steps,
                       pretrained_weights=pretrained)
    return folder, time.perf_counter() - started


def evaluate(folder: Path, seed: int, raw: Path, maps: Path) -> dict:
    predictor = DisyrePredictor.from_model_folder(folder.parent, CONFIGURATION, seeds=[seed])
    predict_folder(predictor, raw / "imagesTs", maps, resume=True)
    summary = evaluate_folders(maps, raw / "labelsTs", progress=False)
    return {"ap": summary["pooled"]["average_precision"], "volume_auroc": summary["volume_level"]["auroc"]}


def run(output: Path, seeds: list[int], source_steps: int, steps: int, n_train: int, n_test: int,
        source_results: Path | None = None) -> dict:
    for key, sub in (("DISYRE_raw", "raw"), ("DISYRE_preprocessed", "preprocessed"), ("DISYRE_results", "results")):
        (output / sub).mkdir(parents=True, exist_ok=True)
        os.environ[key] = str(output / sub)
    if source_results is None:
        make_site(output, SITE_A, n_train, 0 if n_test == 0 else 2)
    raw_b = make_site(output, SITE_B, n_train, n_test)
    results: dict = {"source": str(source_results) if source_results else f"Dataset{SITE_A[0]}_{SITE_A[1]}",
                     "source_steps": source_steps, "steps": steps, "n_train": n_train, "n_test": n_test, "runs": []}
    for seed in seeds:
        if source_results is None:
            source, source_s = trained(output, SITE_A, seed, source_steps)
        else:  # an existing site-A model (same configuration, default acquisition), trained elsewhere
            source, source_s = source_results / f"fold_all_seed_{seed}", None
            if not (source / "checkpoint_final.pth").is_file():
                raise SystemExit(f"error: {source / 'checkpoint_final.pth'} is missing; train seed {seed} "
                                 "there or leave out --source_results")
        # Fine-tuned and from-scratch runs share site B's dataset, so they are told apart by seed:
        # from scratch uses seed, fine-tuned seed + 1000.
        scratch, scratch_s = trained(output, SITE_B, seed, steps)
        tuned, tuned_s = trained(output, SITE_B, seed + 1000, steps, pretrained=source / "checkpoint_final.pth")
        row = {"seed": seed, "train_s": {"source": source_s, "from scratch": scratch_s, "fine-tuned": tuned_s}}
        for arm, folder, run_seed in (("no fine-tuning", source, seed), ("from scratch", scratch, seed),
                                      ("fine-tuned", tuned, seed + 1000)):
            row[arm] = evaluate(folder, run_seed, raw_b, output / "maps" / f"{arm.replace(' ', '_')}_seed{seed}")
        results["runs"].append(row)
    (output / "fine_tuning.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def markdown(results: dict) -> str:
    lines = [f"Site B (scanner_b) test cases, {CONFIGURATION}; source model {results['source_steps']} steps on site A "
             f"({results.get('source', 'site A')}); "
             f"{results['steps']} steps on site B's {results['n_train']} healthy cases; "
             f"seeds {', '.join(str(r['seed']) for r in results['runs'])}.", "",
             "| model | AP | volume AUROC |", "| --- | ---: | ---: |"]
    for arm in ARMS:
        cells = []
        for metric in ("ap", "volume_auroc"):
            values = [r[arm][metric] for r in results["runs"] if r[arm][metric] is not None]
            spread = f" ± {np.std(values):.3f}" if len(values) > 1 else ""
            cells.append(f"{np.mean(values):.3f}{spread}" if values else "n/a")
        lines.append(f"| {arm} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", type=Path, required=True, help="folder for data, models, maps and tables")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (default 0)")
    parser.add_argument("--source_steps", type=int, default=2000, help="steps of the site-A model (default 2000)")
    parser.add_argument("--steps", type=int, default=300, help="steps on site B, fine-tuned and from scratch (default 300)")
    parser.add_argument("--n_train", type=int, default=20, help="healthy training cases per site (default 20)")
    parser.add_argument("--n_test", type=int, default=20, help="site B test cases (default 20)")
    parser.add_argument("--source_results", type=Path, default=None,
                        help="an existing site-A results folder (DATASET/TRAINER__PLANS__2d_small) whose "
                             "fold_all_seed_SEED/checkpoint_final.pth is used instead of training site A here; "
                             "--source_steps then only labels the table")
    args = parser.parse_args(argv)
    if args.output.is_file():
        parser.exit(2, f"error: -o {args.output} is a file; give a folder\n")
    logging.basicConfig(level=logging.WARNING)
    results = run(args.output, args.seeds, args.source_steps, args.steps, args.n_train, args.n_test,
                  args.source_results.resolve() if args.source_results else None)
    table = markdown(results)
    (args.output / "fine_tuning.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
