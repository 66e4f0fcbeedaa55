"""The predictor with torch and with onnxruntime scoring the same volumes on a CPU, side by side (issue 24, point 6).

    pip install -e ".[onnx]"
    python benchmarks/onnx_speed.py [--rounds 3] [--cases 2]

On the synthetic benchmark at 2 mm (``2d_small``, T1 + T2, made once under --workdir by
``gpu_speed.prepare_data``) and a randomly initialised network (the same cost as a trained one), two
``DisyrePredictor``s (fp32, the CPU default) score the same volumes: ``backend="torch"`` and
``backend="onnxruntime"`` (the network exported to ONNX and run by an onnxruntime session,
``disyre_v2.inference.onnx_backend``), alternating ``--rounds`` times so both see the same machine load. Printed: seconds per volume for each and their ratio per round, the median ratio, and
the largest difference between the two maps (the backend is worth offering only with identical maps
to 1e-4 and a speed-up of 1.3x or more).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from gpu_speed import prepare_data, random_network  # noqa: E402

CONFIGURATION = "2d_small"


def score_all(predictor, cases) -> tuple[float, list[np.ndarray]]:
    """(wall s per volume, maps) of scoring every case once."""
    start = time.perf_counter()
    maps = [predictor.predict_preprocessed(case.data, case.mask)[0] for case in cases]
    return (time.perf_counter() - start) / len(cases), maps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--cases", type=int, default=2, help="test cases (default 2)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "disyre_v2_gpu_speed")
    args = parser.parse_args(argv)

    raw, folder = prepare_data(args.workdir / "2mm", CONFIGURATION, 2, 8, args.cases)
    import onnxruntime as ort

    from disyre_v2.inference.model_loading import LoadedModel
    from disyre_v2.inference.predict_folder import find_input_cases
    from disyre_v2.inference.predictor import DisyrePredictor, prepare_case
    from disyre_v2.planning.plans import load_plans

    plans = load_plans(folder / "plans.json")
    config = plans["configurations"][CONFIGURATION]
    channels = config["network"]["kwargs"]["in_channels"]
    found = find_input_cases(raw / "imagesTs", channels, raw / "masksTs")[:args.cases]
    cases = [prepare_case(plans, config, files, mask) for _, files, mask in found]
    network = random_network(config["network"], torch.device("cpu"))
    model = [LoadedModel(network, True, Path("random"))]
    backends = {name: DisyrePredictor(plans, CONFIGURATION, model, precision="fp32", backend=name)
                for name in ("torch", "onnxruntime")}
    batch = backends["torch"].batch_windows * len(backends["torch"].levels)
    print(f"\nCPU ({os.cpu_count()} cores), torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"onnxruntime {ort.__version__}; {CONFIGURATION} at 2 mm, {len(cases)} case(s), batch {batch}, fp32\n",
          flush=True)
    reference = {name: score_all(predictor, cases[:1])[1] for name, predictor in backends.items()}  # warm-up
    difference = float(np.max(np.abs(reference["torch"][0] - reference["onnxruntime"][0])))
    times: dict[str, list[float]] = {name: [] for name in backends}
    for round_ in range(args.rounds):
        for name, predictor in backends.items():
            times[name].append(score_all(predictor, cases)[0])
        print(f"  round {round_ + 1}: torch {times['torch'][-1]:.2f} s/volume, onnxruntime "
              f"{times['onnxruntime'][-1]:.2f} s/volume, speed-up {times['torch'][-1] / times['onnxruntime'][-1]:.2f}x",
              flush=True)
    ratios = [a / b for a, b in zip(times["torch"], times["onnxruntime"])]
    print(f"\n| backend | s per volume (median of {args.rounds}) |\n| --- | ---: |")
    for name in backends:
        print(f"| {name} | {np.median(times[name]):.2f} |")
    print(f"\nspeed-up of onnxruntime over torch: median {np.median(ratios):.2f}x (rounds: "
          f"{', '.join(f'{r:.2f}' for r in ratios)}); largest map difference {difference:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
