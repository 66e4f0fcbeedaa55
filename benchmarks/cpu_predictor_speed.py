"""The predictor on a CPU against the bare network at the same batch, side by side (issue 26, point 12).

    python benchmarks/cpu_predictor_speed.py [--rounds 3] [--precisions fp32 bf16] [--profile]

On the synthetic benchmark at 2 mm (``2d_small``, T1 + T2, made once under --workdir by
``gpu_speed.prepare_data``) and a randomly initialised network (the same cost as a trained one), it
alternates, ``--rounds`` times, the bare eager network forward at the predictor's batch (windows ×
levels) on random input and ``DisyrePredictor.predict_preprocessed`` of the prepared test cases, so that
both see the same load. Printed per precision: samples per wall second and per CPU second of this
process (CPU time counts every thread; on a shared machine it is the steadier figure), seconds per
volume, and the predictor's efficiency (predictor ÷ bare network, per CPU second and per wall
second). ``--profile`` adds the cProfile top entries of one volume's scoring, which shows what
besides the network costs time.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from gpu_speed import CountingIdentity, prepare_data, random_network  # noqa: E402

CONFIGURATION = "2d_small"


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


@torch.inference_mode()
def bare_forward(network, batch: int, channels: int, patch, precision: str, seconds: float) -> tuple[float, float]:
    """(samples per wall s, samples per CPU s) of the eager network on random input, after 3 warm-up calls."""
    x = torch.rand(batch, channels, *patch)
    t = torch.randint(0, 100, (batch,))
    context = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else nullcontext()
    with context:
        for _ in range(3):
            network(x, t)
        n, (wall, cpu) = 0, _clock()
        while time.perf_counter() - wall < seconds or n < 3:
            network(x, t)
            n += 1
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return batch * n / wall, batch * n / cpu


def predictor_run(predictor, cases, samples: list[int]) -> tuple[float, float, float]:
    """(samples per wall s, samples per CPU s, wall s per volume) of scoring every case once."""
    wall, cpu = _clock()
    for case in cases:
        predictor.predict_preprocessed(case.data, case.mask)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return sum(samples) / wall, sum(samples) / cpu, wall / len(cases)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--cases", type=int, default=3, help="test cases (default 3)")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per bare-network measurement (default 5)")
    parser.add_argument("--precisions", nargs="+", default=["fp32"], choices=["fp32", "bf16"])
    parser.add_argument("--profile", action="store_true", help="print cProfile's top entries of one volume")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "disyre_v2_gpu_speed")
    args = parser.parse_args(argv)

    raw, folder = prepare_data(args.workdir / "2mm", CONFIGURATION, 2, 8, args.cases)
    from disyre_v2.inference.model_loading import LoadedModel
    from disyre_v2.inference.predict_folder import find_input_cases
    from disyre_v2.inference.predictor import DisyrePredictor, prepare_case
    from disyre_v2.planning.plans import load_plans

    plans = load_plans(folder / "plans.json")
    config = plans["configurations"][CONFIGURATION]
    patch, channels = config["patch_size"], config["network"]["kwargs"]["in_channels"]
    found = find_input_cases(raw / "imagesTs", channels, raw / "masksTs")[:args.cases]
    cases = [prepare_case(plans, config, files, mask) for _, files, mask in found]
    network = random_network(config["network"], torch.device("cpu"))
    counter = CountingIdentity()
    counting = DisyrePredictor(plans, CONFIGURATION, [LoadedModel(counter, True, Path("count"))])
    samples = []
    for case in cases:
        counter.samples = 0
        counting.predict_preprocessed(case.data, case.mask)
        samples.append(counter.samples)
    predictors = {p: DisyrePredictor(plans, CONFIGURATION, [LoadedModel(network, True, Path("random"))], precision=p)
                  for p in args.precisions}
    batch = predictors[args.precisions[0]].batch_windows * len(predictors[args.precisions[0]].levels)
    print(f"\nCPU ({os.cpu_count()} cores), torch {torch.__version__}, {torch.get_num_threads()} torch threads, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '-')}, "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '-')}; {CONFIGURATION} at 2 mm, {len(cases)} "
          f"case(s), {np.mean(samples):.0f} network samples per volume, batch {batch}\n", flush=True)
    for predictor in predictors.values():  # warm-up
        predictor.predict_preprocessed(cases[0].data, cases[0].mask)
    results: dict[str, dict[str, list]] = {p: {"bare": [], "predictor": []} for p in args.precisions}
    for round_ in range(args.rounds):
        for precision, predictor in predictors.items():
            bare = bare_forward(network, batch, channels, patch, precision, args.seconds)
            scored = predictor_run(predictor, cases, samples)
            results[precision]["bare"].append(bare)
            results[precision]["predictor"].append(scored)
            print(f"  round {round_ + 1} {precision}: bare {bare[0]:.0f}/s wall, {bare[1]:.0f}/CPU-s; predictor "
                  f"{scored[0]:.0f}/s wall, {scored[1]:.0f}/CPU-s, {scored[2]:.2f} s per volume", flush=True)
    print("\n| precision | bare network, samples/s (per CPU-s) | predictor, samples/s (per CPU-s) "
          "| s per volume | efficiency per CPU-s (per wall s) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for precision in args.precisions:
        bare = np.median(np.array(results[precision]["bare"]), axis=0)
        scored = np.median(np.array(results[precision]["predictor"]), axis=0)
        print(f"| {precision} | {bare[0]:.0f} ({bare[1]:.0f}) | {scored[0]:.0f} ({scored[1]:.0f}) | {scored[2]:.2f} | "
              f"{scored[1] / bare[1]:.2f} ({scored[0] / bare[0]:.2f}) |")
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        predictors[args.precisions[0]].predict_preprocessed(cases[0].data, cases[0].mask)
        profiler.disable()
        stream = io.StringIO()
        pstats.Stats(profiler, stream=stream).sort_stats("tottime").print_stats(15)
        print(stream.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
