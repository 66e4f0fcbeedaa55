"""CutPaste's ``patch_density`` score with and without skipping the sub-patches that hold no brain pixel.

A sub-patch wholly outside the brain only scores pixels that the predictor then sets to 0, so
``patch_density_score`` leaves it unencoded when ``sliding_window_scores`` passes the windows' brain.
This script scores the windows of test cases both ways, side by side in one run (alternating, so a
noisy shared machine slows both alike), and prints the seconds per case, their ratio, the share of
sub-patches skipped and the largest difference of the two maps inside the brain (0 expected):

    python benchmarks/cutpaste_scoring.py -m RESULTS/Dataset992_X/CutPasteTrainer__DisyrePlans__2d_small \\
        -i RAW/Dataset992_X/imagesTs --cases 2 --seed 0

The model is a trained CutPasteTrainer model folder (``-chk final``: the density is fitted then).
"""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import torch

from disyre_v2.inference.model_loading import load_models
from disyre_v2.inference.patch_density import patch_density_score, sub_patches
from disyre_v2.inference.predict_folder import default_masks_folder, find_input_cases
from disyre_v2.inference.predictor import DisyrePredictor
from disyre_v2.inference.sliding_window import sliding_window_scores
from disyre_v2.planning.plans import load_plans


def skipped_share(slices_brain: torch.Tensor, predictor: DisyrePredictor, patch: int, stride: int) -> float:
    """Share of the scored windows' sub-patches that hold no brain pixel."""
    counted = {"all": 0, "skipped": 0}

    def count(windows, brain):
        holds = sub_patches(brain[:, None].float(), patch, stride).flatten(1).amax(1) > 0
        counted["all"] += len(holds)
        counted["skipped"] += int((~holds).sum())
        return torch.zeros(brain.shape), None

    count.takes_brain = True
    dummy = torch.zeros((slices_brain.shape[0], 1, *slices_brain.shape[1:]))
    sliding_window_scores(dummy, slices_brain, count, predictor.patch, step_fraction=predictor.tile_step,
                          batch_windows=predictor.batch_windows)
    return counted["skipped"] / max(counted["all"], 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-m", "--model_folder", type=Path, required=True, help="a trained CutPasteTrainer model folder")
    parser.add_argument("-i", "--images", type=Path, required=True, help="a folder of test cases (imagesTs)")
    parser.add_argument("--cases", type=int, default=2, help="how many cases to score (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="the model's seed (default 0)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    try:
        models = load_models(args.model_folder, "2d_small", seeds=[args.seed])
    except (FileNotFoundError, ValueError) as error:
        parser.error(str(error))
    if not hasattr(models[0].network, "density_distance"):
        parser.error(f"{args.model_folder} is not a CutPasteTrainer model folder (its network has no density)")
    predictor = DisyrePredictor(load_plans(args.model_folder), "2d_small", models, score="patch_density")
    cases = find_input_cases(args.images, len(predictor.plans["channel_names"]),
                             default_masks_folder(args.images))[:args.cases]
    if not cases:
        parser.error(f"{args.images} holds no test case; give an imagesTs folder")
    network = models[0].network
    skip = patch_density_score(network)

    def every(windows):  # the same score without the brain: every sub-patch encoded
        return skip(windows)

    for name, paths, mask in cases:
        case = predictor.prepare_case(paths, mask)
        slices = torch.from_numpy(np.moveaxis(case.data, predictor.slice_axis + 1, 0).copy())
        brain = torch.from_numpy(np.moveaxis(case.mask, predictor.slice_axis, 0).copy())
        seconds, maps = {"skip": [], "every": []}, {}
        with torch.inference_mode():
            for _ in range(2):
                for label, function in (("skip", skip), ("every", every)):
                    started = time.perf_counter()
                    maps[label], _ = sliding_window_scores(slices, brain, function, predictor.patch,
                                                           step_fraction=predictor.tile_step,
                                                           batch_windows=predictor.batch_windows)
                    seconds[label].append(time.perf_counter() - started)
        difference = float((maps["skip"] - maps["every"])[brain].abs().max())
        share = skipped_share(brain, predictor, int(network.score_patch), int(network.score_stride))
        print(f"{name}: every sub-patch {min(seconds['every']):.1f} s, brain only {min(seconds['skip']):.1f} s "
              f"(×{min(seconds['every']) / min(seconds['skip']):.2f}); sub-patches skipped {share:.0%}; "
              f"largest map difference inside the brain {difference:.3g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
