"""Every speed figure of issue 13 in one command: network, predictor, CLI, training step and loader.

Run from a fresh clone on a GPU machine (torch installed; the package's other dependencies too, e.g.
``pip install --no-deps -e .`` next to SimpleITK, batchgenerators, scikit-learn, scipy, nilearn;
no network needed: the data are the built-in synthetic benchmark, the networks randomly
initialised, which costs the same as trained ones):

    python benchmarks/gpu_speed.py                       # CUDA if available, 2d at 1 mm, 20 cases
    python benchmarks/gpu_speed.py --device cpu --quick  # the same figures on a CPU (2d_small, 2 mm)

Printed, side by side in one run (before = what the code did before issue 13, after = now):
  1. bare network forward (bf16 autocast on CUDA), eager and torch.compile (channels-last on CUDA),
     at the predictor's batch and at --big_batch; samples/s and TFLOP/s;
  2. predictor scoring per volume (``predict_preprocessed``): eager and compiled, samples/s,
     s/volume, and its efficiency = predictor samples/s ÷ bare network samples/s at the same batch;
  3. the folder predictor end to end (read, preprocess, score, export, write) per case, without and
     with background processes (-np 0 and 2);
  4. training step of the configuration with the loader (its workers: DISYRE_n_proc_DA, default
     cores − 2): median and p90 step time and samples/s, eager and compiled; the bare network's
     training step (eager, fused AdamW) for reference;
  5. the loader in-process, samples per CPU-second: batchgenerators' SpatialTransform (before)
     against the batched spatial transform (after).
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # measure this checkout, whatever copy is installed
sys.path.insert(0, str(ROOT / "benchmarks"))

import network_throughput  # noqa: E402  (benchmarks/network_throughput.py)

DATASET_ID = 989


def prepare_data(workdir: Path, configuration: str, spacing: int, n_train: int, n_test: int) -> tuple[Path, Path]:
    """Synthetic raw dataset and its preprocessed folder (created once, reused)."""
    for key, sub in (("DISYRE_raw", "raw"), ("DISYRE_preprocessed", "preprocessed"), ("DISYRE_results", "results")):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
        os.environ[key] = str(workdir / sub)
    from disyre_v2.dataset_conversion.synthetic.builder import make_synthetic_dataset
    from disyre_v2.paths import existing_datasets
    from disyre_v2.planning.plan_and_preprocess_api import plan_and_preprocess

    cores = os.cpu_count() or 1
    if not existing_datasets(workdir / "raw"):
        print(f"Generating {n_train} + {n_test} synthetic cases at {spacing} mm in {workdir / 'raw'} ...", flush=True)
        make_synthetic_dataset(DATASET_ID, n_train=n_train, n_test=n_test, spacing=spacing, montage=False,
                               num_processes=min(n_train + n_test, cores))
    folder = plan_and_preprocess(DATASET_ID, [configuration], num_workers=min(n_train, cores), progress=False)
    raw = next((workdir / "raw").glob(f"Dataset{DATASET_ID}_*"))
    return raw, folder


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device):
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()


def random_network(network_plans: dict, device: torch.device) -> torch.nn.Module:
    from disyre_v2.training.network.builder import build_network

    torch.manual_seed(0)
    return build_network(network_plans).to(device).eval()


@torch.inference_mode()
def bare_forward(network, batch: int, channels: int, patch: list[int], device: torch.device, compiled: bool,
                 seconds: float) -> float:
    """Samples/s of the network alone on random input (after warm-up and compilation)."""
    from disyre_v2.inference.compilation import CompiledNetwork

    run = CompiledNetwork(network, channels_last=device.type == "cuda") if compiled else network
    x = torch.rand(batch, channels, *patch, device=device)
    t = torch.randint(0, 100, (batch,), device=device)
    with autocast(device):
        for _ in range(3):
            run(x, t)
        synchronize(device)
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds or n < 3:
            run(x, t)
            n += 1
        synchronize(device)
    return batch * n / (time.perf_counter() - start)


class CountingIdentity(torch.nn.Module):
    """Counts the samples the predictor sends through the network (eager, cheap)."""

    def __init__(self):
        super().__init__()
        self.samples = 0

    def forward(self, x, t=None):
        self.samples += x.shape[0]
        return x


def predictor_figures(plans, configuration, network, cases, device, compiled: bool) -> dict:
    """Scoring time per volume of prepared cases (the first case also warms up / compiles)."""
    from disyre_v2.inference.model_loading import LoadedModel
    from disyre_v2.inference.predictor import DisyrePredictor

    counter = CountingIdentity()
    counting = DisyrePredictor(plans, configuration, [LoadedModel(counter, True, Path("count"))], device=device,
                               compile=False)
    predictor = DisyrePredictor(plans, configuration, [LoadedModel(network, True, Path("random"))], device=device,
                                compile=compiled)
    predictor.predict_preprocessed(cases[0].data, cases[0].mask)  # warm-up (compilation)
    seconds, samples = [], []
    for case in cases:
        counter.samples = 0
        counting.predict_preprocessed(case.data, case.mask)
        samples.append(counter.samples)
        synchronize(device)
        start = time.perf_counter()
        predictor.predict_preprocessed(case.data, case.mask)
        synchronize(device)
        seconds.append(time.perf_counter() - start)
    return {"s_per_volume": float(np.mean(seconds)), "samples_per_volume": float(np.mean(samples)),
            "samples_per_s": float(np.sum(samples) / np.sum(seconds)),
            "batch": predictor.batch_windows * len(predictor.levels), "predictor": predictor}


def folder_figures(predictor, images: Path, masks: Path, workers: int) -> float:
    """Seconds per case of predict_folder (read, preprocess, score, export, write)."""
    from disyre_v2.inference.predict_folder import predict_folder

    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        written = predict_folder(predictor, images, out, masks_folder=masks, num_workers=workers)
        return (time.perf_counter() - start) / max(len(written), 1)


def training_figures(plans, configuration, folder: Path, device, compiled: bool, warmup: int, steps: int) -> dict:
    """Step times of the trainer (loader workers included), synchronised per step for timing."""
    from disyre_v2.training.trainer.base import DisyreTrainer

    with tempfile.TemporaryDirectory() as out:
        trainer = DisyreTrainer(plans, configuration, "all", folder, out, seed=0, device=str(device),
                                num_steps=warmup + steps, compile=compiled)
        trainer.initialize()
        times = []
        try:
            for step in range(warmup + steps):
                synchronize(device)
                start = time.perf_counter()
                trainer.train_step(trainer._to_tensors(next(trainer.train_batches)))
                synchronize(device)
                if step >= warmup:
                    times.append(time.perf_counter() - start)
        finally:
            trainer._stop_workers()
    batch = plans["configurations"][configuration]["batch"]
    per_step = batch["n_volumes"] * batch["n_slices"]
    median = float(np.median(times))
    return {"median_ms": 1e3 * median, "p90_ms": 1e3 * float(np.percentile(times, 90)),
            "samples_per_s": per_step / float(np.mean(times))}


def bare_training(network_plans, batch: int, patch, device, steps: int) -> float:
    network = random_network(network_plans, device).train()
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-4, fused=device.type == "cuda")
    channels = network_plans["kwargs"]["in_channels"]
    x = torch.rand(batch, channels, *patch, device=device)
    t = torch.randint(0, 100, (batch,), device=device)
    for step in range(steps + 3):
        if step == 3:
            synchronize(device)
            start = time.perf_counter()
        with autocast(device):
            loss = torch.nn.functional.mse_loss(network(x, t).float(), x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    synchronize(device)
    return batch * steps / (time.perf_counter() - start)


def loader_figures(folder: Path, configuration: str, batches: int) -> dict:
    """In-process samples per CPU-second, batchgenerators' SpatialTransform against the batched one."""
    import anomaly_synthesis as loader_benchmark  # benchmarks/anomaly_synthesis.py
    from batchgenerators.transforms.spatial_transforms import SpatialTransform

    import disyre_v2.training.augmentation as augmentation_module

    after = loader_benchmark.measure(folder, configuration, 0, batches, 2)["per_cpu_s"]
    original = augmentation_module.build_augmentation

    def with_legacy_spatial(params, patch_size):
        transforms = original(params, patch_size)
        angle = np.deg2rad(params["rotation_deg"])
        transforms[0] = SpatialTransform(
            list(patch_size), patch_center_dist_from_border=None, random_crop=False,
            do_elastic_deform=params["elastic_probability"] > 0, alpha=(0.0, 200.0), sigma=(9.0, 13.0),
            do_rotation=params["rotation_probability"] > 0, angle_x=(-angle, angle), angle_y=(0, 0), angle_z=(0, 0),
            do_scale=params["scale_probability"] > 0, scale=tuple(params["scale_range"]),
            border_mode_data="constant", border_cval_data=0, order_data=3, border_mode_seg="constant",
            border_cval_seg=0, order_seg=0, p_el_per_sample=params["elastic_probability"],
            p_rot_per_sample=params["rotation_probability"], p_scale_per_sample=params["scale_probability"])
        return transforms

    augmentation_module.build_augmentation = with_legacy_spatial
    try:
        before = loader_benchmark.measure(folder, configuration, 0, batches, 2)["per_cpu_s"]
    finally:
        augmentation_module.build_augmentation = original
    return {"before": before, "after": after}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    parser.add_argument("--quick", action="store_true", help="2d_small at 2 mm, 3 test cases: checks the script on a CPU")
    parser.add_argument("--cases", type=int, default=20, help="test cases for the predictor figures (default 20)")
    parser.add_argument("--big_batch", type=int, default=1024, help="second batch of the bare network on CUDA (default 1024)")
    parser.add_argument("--train_steps", type=int, default=50, help="timed training steps (default 50)")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per bare-network measurement (default 5)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "disyre_v2_gpu_speed")
    args = parser.parse_args()

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    configuration, spacing = ("2d_small", 2) if args.quick else ("2d", 1)
    cases_wanted = 3 if args.quick else args.cases
    os.environ.setdefault("DISYRE_n_proc_DA", str(max((os.cpu_count() or 2) - 2, 1)))
    raw, folder = prepare_data(args.workdir / f"{spacing}mm", configuration, spacing, 8, cases_wanted)

    from disyre_v2.planning.plans import load_plans
    from disyre_v2.inference.predictor import prepare_case
    from disyre_v2.inference.predict_folder import find_input_cases

    plans = load_plans(folder / "plans.json")
    config = plans["configurations"][configuration]
    network_plans = copy.deepcopy(config["network"])
    patch, channels = config["patch_size"], network_plans["kwargs"]["in_channels"]
    flops = network_throughput.forward_flops(network_plans["kwargs"], patch[0])  # square patches
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    print(f"\n{name}, torch {torch.__version__}, configuration {configuration} (P = {patch[0]}, {channels} channel(s), "
          f"{flops / 1e9:.2f} GFLOP per sample forward), {spacing} mm synthetic cases\n", flush=True)

    cases_found = find_input_cases(raw / "imagesTs", channels, raw / "masksTs")[:cases_wanted]
    prepared = [prepare_case(plans, config, files, mask) for _, files, mask in cases_found]
    network = random_network(network_plans, device)
    rows = []

    def number(value):
        if value is None:
            return "-"
        return f"{value:,.0f}" if value >= 100 else (f"{value:.1f}" if value >= 10 else f"{value:.2f}")

    def row(what, before, after, unit, note=""):
        ratio = f"{after / before:.2f}x" if before and after else ""
        rows.append((what, number(before), number(after), unit, ratio, note))
        print(f"  {what}: {rows[-1][1]} -> {rows[-1][2]} {unit} {ratio}", flush=True)

    eager = predictor_figures(plans, configuration, network, prepared, device, compiled=False)
    compiled = predictor_figures(plans, configuration, network, prepared, device, compiled=True)
    batch = compiled["batch"]
    bare_eager = bare_forward(network, batch, channels, patch, device, False, args.seconds)
    bare_compiled = bare_forward(network, batch, channels, patch, device, True, args.seconds)
    row(f"bare network forward, batch {batch} (eager -> compiled)", bare_eager, bare_compiled, "samples/s",
        f"{bare_compiled * flops / 1e12:.1f} TFLOP/s compiled")
    if device.type == "cuda":
        big_eager = bare_forward(network, args.big_batch, channels, patch, device, False, args.seconds)
        big_compiled = bare_forward(network, args.big_batch, channels, patch, device, True, args.seconds)
        row(f"bare network forward, batch {args.big_batch} (eager -> compiled)", big_eager, big_compiled, "samples/s",
            f"{big_eager * flops / 1e12:.1f} -> {big_compiled * flops / 1e12:.1f} TFLOP/s")
    row("predictor scoring (eager -> compiled)", eager["samples_per_s"], compiled["samples_per_s"], "samples/s",
        f"{compiled['samples_per_volume']:.0f} samples per volume")
    row("predictor scoring per volume (eager -> compiled)", eager["s_per_volume"], compiled["s_per_volume"], "s")
    row("predictor efficiency: predictor ÷ bare network, same batch (eager, compiled)",
        eager["samples_per_s"] / bare_eager, compiled["samples_per_s"] / bare_compiled, "", "target >= 0.9 (GPU), 0.85 (CPU)")
    default_predictor = compiled["predictor"] if device.type == "cuda" else eager["predictor"]
    images, masks = raw / "imagesTs", raw / "masksTs"
    row("predict a folder, per case (-np 0 -> -np 2)", folder_figures(default_predictor, images, masks, 0),
        folder_figures(default_predictor, images, masks, 2), "s", f"{len(prepared)} cases")
    if not args.quick or device.type == "cuda":
        train_eager = training_figures(plans, configuration, folder, device, False, 5, args.train_steps)
        train_compiled = training_figures(plans, configuration, folder, device, True, 5, args.train_steps)
        row("training step, median (eager -> compiled)", train_eager["median_ms"], train_compiled["median_ms"], "ms",
            f"p90 {train_eager['p90_ms']:.0f} -> {train_compiled['p90_ms']:.0f} ms, "
            f"{os.environ['DISYRE_n_proc_DA']} loader workers")
        row("training throughput (eager -> compiled)", train_eager["samples_per_s"], train_compiled["samples_per_s"],
            "samples/s")
        per_step = config["batch"]["n_volumes"] * config["batch"]["n_slices"]
        row(f"bare network training step, batch {per_step}, fused AdamW (eager)", None,
            bare_training(network_plans, per_step, patch, device, 10 if args.quick else 30), "samples/s")
    loader = loader_figures(folder, configuration, 10 if args.quick else 20)
    row(f"loader in-process, {channels} channel(s) at {patch[0]}² (SpatialTransform -> batched)", loader["before"],
        loader["after"], "samples per CPU-s", "target >= 700 at 128², 2 channels")

    print("\n| what | before | after | unit | ratio | note |\n| --- | ---: | ---: | --- | ---: | --- |")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
