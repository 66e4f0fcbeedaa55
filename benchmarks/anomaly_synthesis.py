"""Samples per second of the complete training loader at 128²: memory-mapped .npy → augmentation → DAG.

The data are the synthetic benchmark (disyre_v2_make_synthetic_dataset) at 1 mm, planned with the
``2d`` configuration (P = 128, batches of 8 volumes × 12 slices), generated once into a work folder
and reused. Two variants are measured: both channels (T1 + T2 in one model) and T1 alone (the paper
trains one model per modality; that configuration, ``2d_T1``, is the first channel of the same
preprocessed arrays). With ``--spacing 2`` the 2 mm data are used with the patch set to 128 by hand
(and the anomaly sizes scaled to P = 128), so slices are mostly zero-padded.

Each variant runs in this process (0 workers) and through ``build_batch_generator`` with 1 and 2
workers (NonDetMultiThreadedAugmenter). Printed per run: samples/s of wall time, and samples per
CPU-second of the processes that do the work (the worker processes; this process when in-process),
which is the per-core figure and depends little on other work on a shared machine. The load average
is printed before and after.

    python benchmarks/anomaly_synthesis.py                      # 1 mm, work folder in $TMPDIR
    python benchmarks/anomaly_synthesis.py --batches 10 --workers 1
    python benchmarks/anomaly_synthesis.py --profile 10          # cProfile of 10 in-process batches
"""
from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# Measure the checkout this file belongs to, whatever copy of disyre_v2 is installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DATASET_ID = 990
CONFIGURATION = "2d"
SINGLE_CHANNEL = "2d_T1"
_TICKS = os.sysconf("SC_CLK_TCK")


def prepare(workdir: Path, spacing: int, n_train: int) -> Path:
    """The preprocessed dataset folder (created on first use) with configurations 2d and 2d_T1."""
    for key, sub in (("DISYRE_raw", "raw"), ("DISYRE_preprocessed", "preprocessed"), ("DISYRE_results", "results")):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
        os.environ[key] = str(workdir / sub)
    from disyre_v2.dataset_conversion.synthetic.builder import make_synthetic_dataset
    from disyre_v2.paths import existing_datasets
    from disyre_v2.planning.plan_and_preprocess_api import plan_and_preprocess
    from disyre_v2.planning.planner import scaled_anomaly_synthesis
    from disyre_v2.planning.plans import load_plans, save_plans

    if not existing_datasets(workdir / "raw"):
        print(f"Generating {n_train} synthetic training cases at {spacing} mm in {workdir / 'raw'} ...", flush=True)
        make_synthetic_dataset(DATASET_ID, n_train=n_train, n_test=0, spacing=spacing, montage=False,
                               num_processes=min(n_train, os.cpu_count() or 1))
    folder = plan_and_preprocess(DATASET_ID, [CONFIGURATION], num_workers=min(n_train, os.cpu_count() or 1),
                                 progress=False)
    plans = load_plans(folder)
    config = plans["configurations"][CONFIGURATION]
    if config["patch_size"] != [128, 128]:  # 2 mm data: set the paper's patch by hand
        mode = config["anomaly_synthesis"]["mode"]
        config["patch_size"] = [128, 128]
        config["anomaly_synthesis"] = dict(scaled_anomaly_synthesis(128), mode=mode)
    single = json.loads(json.dumps(config))
    single.update(data_identifier=SINGLE_CHANNEL, tissue_centroids=config["tissue_centroids"][:1])
    single["network"]["kwargs"].update(in_channels=1, out_channels=1)
    plans["configurations"][SINGLE_CHANNEL] = single
    save_plans(plans, folder)
    source, target = folder / config["data_identifier"], folder / SINGLE_CHANNEL
    target.mkdir(exist_ok=True)
    for mask in sorted(source.glob("*_mask.npy")):
        case = mask.name[: -len("_mask.npy")]
        if not (target / mask.name).is_file():
            np.save(target / f"{case}.npy", np.ascontiguousarray(np.load(source / f"{case}.npy")[:1]))
            np.save(target / mask.name, np.load(mask))
    return folder


def build(folder: Path, name: str, workers: int, seed: int = 0):
    """Loader + augmentation + synthesis of configuration ``name``, as the trainer assembles them."""
    from disyre_v2.training.anomalies.transform import AnomalySynthesisTransform
    from disyre_v2.training.augmentation import build_augmentation
    from disyre_v2.training.data_loader import SliceDataLoader
    from disyre_v2.training.data_pipeline import build_batch_generator

    config = json.loads((folder / "plans.json").read_text())["configurations"][name]
    data = folder / config["data_identifier"]
    cases = sorted(p.name[: -len("_mask.npy")] for p in data.glob("*_mask.npy"))
    patch, batch = config["patch_size"], config["batch"]
    loader = SliceDataLoader(data, cases, patch, batch["n_volumes"], batch["n_slices"], seed=seed,
                             slice_axis=config.get("slice_axis", 0))
    augmentation = build_augmentation(config["augmentation"], patch)
    synthesis = AnomalySynthesisTransform.from_plans(config, seed=seed)
    return loader, augmentation, synthesis, build_batch_generator(loader, augmentation + [synthesis], workers)


def _cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks
    return total / _TICKS


def measure(folder: Path, name: str, workers: int, batches: int, warmup: int) -> dict:
    """Wall-clock and per-CPU-second throughput of ``batches`` batches after ``warmup`` batches."""
    *_, generator = build(folder, name, workers)
    for _ in range(warmup):
        batch = next(generator)
    pids = [p.pid for p in getattr(generator, "_processes", [])]  # started by the first next()
    samples = len(batch["t"]) * batches
    cpu0, wall0 = (_cpu_seconds(pids) if pids else time.process_time()), time.perf_counter()
    main0 = time.process_time()
    for _ in range(batches):
        next(generator)
    wall = time.perf_counter() - wall0
    cpu = (_cpu_seconds(pids) if pids else time.process_time()) - cpu0
    main_cpu = time.process_time() - main0
    if hasattr(generator, "_finish"):
        generator._finish()
    return {"samples": samples, "wall_s": wall, "per_s": samples / wall, "per_cpu_s": samples / max(cpu, 1e-9),
            "shape": tuple(batch["data"].shape), "main_cpu_ms": 1e3 * main_cpu / samples}


def stage_breakdown(folder: Path, name: str, batches: int) -> dict:
    """CPU milliseconds per sample of loading, augmentation and synthesis, in this process."""
    import random

    loader, augmentation, synthesis, _ = build(folder, name, 0)
    times = np.zeros(3)
    count = 0
    for i in range(batches + 1):
        t0 = time.process_time()
        batch = loader.generate_train_batch()
        t1 = time.process_time()
        random.seed(i)
        np.random.seed(i)
        for transform in augmentation:
            batch = transform(**batch)
        t2 = time.process_time()
        synthesis(**batch)
        t3 = time.process_time()
        if i:  # the first batch builds the blob library and opens the files
            times += (t1 - t0, t2 - t1, t3 - t2)
            count += len(batch["data"])
    return dict(zip(("load", "augment", "synthesis"), 1e3 * times / count))


def profile(folder: Path, name: str, batches: int) -> None:
    *_, generator = build(folder, name, 0)
    next(generator)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(batches):
        next(generator)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "disyre_v2_bench_anomaly",
                        help="folder for the generated data (reused when it exists)")
    parser.add_argument("--spacing", type=int, choices=(1, 2), default=1, help="synthetic data at 1 or 2 mm (default 1)")
    parser.add_argument("--n_train", type=int, default=4, help="synthetic training cases to generate (default 4)")
    parser.add_argument("--batches", type=int, default=20, help="timed batches per run (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed batches first (default 3)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="worker counts (default 0 1 2)")
    parser.add_argument("--configs", nargs="+", default=[SINGLE_CHANNEL, CONFIGURATION],
                        help=f"configurations to measure (default {SINGLE_CHANNEL} {CONFIGURATION})")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="instead, profile N in-process batches of the first configuration")
    args = parser.parse_args(argv)

    folder = prepare(args.workdir / f"{args.spacing}mm", args.spacing, args.n_train)
    if args.profile:
        profile(folder, args.configs[0], args.profile)
        return 0
    load_before = os.getloadavg()
    print(f"{os.cpu_count()} CPU(s); load average before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}")
    print(f"data: {folder} ({args.spacing} mm); timed {args.batches} batches after {args.warmup}")
    for name in args.configs:
        stages = stage_breakdown(folder, name, max(args.batches // 2, 2))
        print(f"\n{name}: CPU ms per sample, in-process: load {stages['load']:.2f}, augment {stages['augment']:.2f}, "
              f"synthesis {stages['synthesis']:.2f} (total {sum(stages.values()):.2f} = "
              f"{1e3 / sum(stages.values()):.0f} samples per CPU-second)")
        print(f"{'workers':>8}{'batch shape':>22}{'samples/s':>11}{'per CPU-s':>11}{'per worker':>12}{'main ms':>9}{'load 1 min':>12}")
        for workers in args.workers:
            result = measure(folder, name, workers, args.batches, args.warmup)
            print(f"{workers:>8}{str(result['shape']):>22}{result['per_s']:>11.0f}{result['per_cpu_s']:>11.0f}"
                  f"{result['per_s'] / max(workers, 1):>12.0f}{result['main_cpu_ms']:>9.2f}{os.getloadavg()[0]:>12.2f}", flush=True)
    load_after = os.getloadavg()
    print(f"\nload average after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
