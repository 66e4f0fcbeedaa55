"""Cost of the median filter of the anomaly map against the scoring of one volume (issue 26, point 2).

    python benchmarks/median_filter_speed.py                  # CPU, and CUDA when there is one
    python benchmarks/median_filter_speed.py --repeats 3 --no_scoring

Times scipy (the reference, single-threaded) and the torch filter (disyre_v2.inference.postprocessing)
for a 3³ cube on a cropped 2 mm volume (75 × 90 × 75, `2d_small`) and a 5³ cube on a cropped 1 mm
volume (150 × 180 × 150, `2d`), checks that both give the same map bit for bit, and, for comparison,
times the predictor's scoring of the same volume with a randomly initialised network (random weights
cost what trained ones do): `2d_small` on every device, `2d` on CUDA only (minutes on a CPU).
Figures: documentation/explanation/performance.md, "Median filter cost".
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
import network_throughput  # noqa: E402  (benchmarks/network_throughput.py: the networks' kwargs)

from disyre_v2.inference.postprocessing import median_filter_scipy, median_filter_torch  # noqa: E402

# (volume shape z, y, x; spacing mm; cube side; configuration scored for comparison)
CASES = (((75, 90, 75), 2.0, 3, "2d_small"), ((150, 180, 150), 1.0, 5, "2d"))


def brain_volume(shape: tuple[int, int, int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A cropped 'brain': an ellipsoid filling the box (about half its voxels), a smooth random map on it."""
    grids = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    brain = sum(g ** 2 for g in grids) <= 1.0
    rng = np.random.default_rng(seed)
    values = ndimage.gaussian_filter(rng.random(shape).astype(np.float32), 1.0) * brain
    return values.astype(np.float32), brain


def timed(function, repeats: int, device: torch.device) -> tuple[float, object]:
    """The best of ``repeats`` wall-clock times (seconds) and the last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = function()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best, result


def plans_for(configuration: str, spacing: float) -> dict:
    kwargs, patch, _, _ = network_throughput.CONFIGURATIONS[configuration]
    return {
        "channel_names": {"0": "T1"},
        "configurations": {configuration: {
            "data_identifier": configuration, "spacing": [spacing] * 3, "resample": False, "slice_axis": 0,
            "patch_size": [patch, patch], "normalization": {"percentile": 98.0, "domain": "brain", "clip": [0.0, 1.0]},
            "schedule": {"num_levels": 100, "beta_start": 0.001, "beta_end": 0.2},
            "inference": {"ensemble_levels": [0, 25, 50, 75], "tile_step": 0.25, "gaussian_sigma_scale": 0.125,
                          "gaussian_min": 0.001, "median_filter_size": 0},
            "network": {"class_name": "DisyreUNet", "kwargs": kwargs},
            **{key: {} for key in ("batch", "anomaly_synthesis", "augmentation", "training")},
            "tissue_centroids": [],
        }},
    }


def scoring_seconds(configuration: str, spacing: float, data: np.ndarray, brain: np.ndarray,
                    device: torch.device) -> float:
    """One volume through DisyrePredictor.predict_preprocessed (ensemble of 4 levels, no filter)."""
    from disyre_v2.inference.model_loading import LoadedModel
    from disyre_v2.inference.predictor import DisyrePredictor
    from disyre_v2.training.network import build_network

    plans = plans_for(configuration, spacing)
    network = build_network(plans["configurations"][configuration]["network"]).to(device).eval()
    predictor = DisyrePredictor(plans, configuration, [LoadedModel(network, True, Path("random"))], device=device)
    predictor.predict_preprocessed(data[None], brain, filtered=False)  # warm-up (compilation on CUDA)
    seconds, _ = timed(lambda: predictor.predict_preprocessed(data[None], brain, filtered=False), 1, device)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs per figure (default 2)")
    parser.add_argument("--no_scoring", action="store_true", help="leave out the scoring of a volume")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; "
          f"CUDA: {torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'}")
    for shape, spacing, size, configuration in CASES:
        values, brain = brain_volume(shape)
        print(f"\n{size}³ median on {shape[0]}x{shape[1]}x{shape[2]} at {spacing:g} mm "
              f"({brain.mean():.0%} brain voxels):")
        scipy_seconds, reference = timed(lambda: median_filter_scipy(values, brain, size), args.repeats,
                                         torch.device("cpu"))
        print(f"  scipy (CPU, 1 thread)        {scipy_seconds:8.3f} s")
        for device in devices:
            map_on, brain_on = torch.from_numpy(values).to(device), torch.from_numpy(brain).to(device)
            seconds, found = timed(lambda: median_filter_torch(map_on, brain_on, size), args.repeats, device)
            same = np.array_equal(found.cpu().numpy(), reference)
            print(f"  torch ({device.type:4s})                {seconds:8.3f} s   identical to scipy: {same}")
            if args.no_scoring or (configuration == "2d" and device.type == "cpu"):
                continue
            scoring = scoring_seconds(configuration, spacing, values, brain, device)
            filter_seconds = seconds if device.type == "cuda" else min(seconds, scipy_seconds)
            print(f"  scoring with {configuration} ({device.type})    {scoring:8.3f} s   filter / scoring: "
                  f"{filter_seconds / scoring:.1%}")
        if configuration == "2d" and not torch.cuda.is_available():
            print("  scoring with 2d: no GPU here (minutes on a CPU; run this script on a GPU for the figure)")


if __name__ == "__main__":
    main()
