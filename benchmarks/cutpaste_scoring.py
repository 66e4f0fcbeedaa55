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
import sys
import time
from pathlib import Path

import numpy as np
import torch

from disyre_v2.inference.model_loading import load_models
from disyre_v2.inference.patch_density import patch_density_score
from disyre_v2.inference.predict_folder import default_masks_folder, find_input_cases
from disyre_v2.inference.predictor import DisyrePredictor
from disyre_v2.inference.sliding_window import sliding_window_scores
from disyre_v2.planning.plans import load_plans


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
    if args.cases < 1:
        parser.error(f"--cases must be at least 1, got {args.cases}")
    try:
        cases = find_input_cases(args.images, len(predictor.plans["channel_names"]),
                                 default_masks_folder(args.images))[:args.cases]
    except (FileNotFoundError, ValueError) as error:
        parser.error(str(error))
    if not cases:
        parser.error(f"{args.images} holds no test case; give an imagesTs folder")
    network = models[0].network
    encode, encoded = network.features, {"count": 0}

    def counted_features(pieces):  # counts the sub-patches each way encodes (the skipped share)
        encoded["count"] += len(pieces)
        return encode(pieces)

    network.features = counted_features
    skip = patch_density_score(network)

    def every(windows):  # the same score without the brain: every sub-patch encoded
        return skip(windows)

    for name, paths, mask in cases:
        case = predictor.prepare_case(paths, mask)
        slices = torch.from_numpy(np.moveaxis(case.data, predictor.slice_axis + 1, 0).copy())
        brain = torch.from_numpy(np.moveaxis(case.mask, predictor.slice_axis, 0).copy())
        seconds, maps, counts = {"skip": [], "every": []}, {}, {}
        with torch.inference_mode():
            for _ in range(2):
                for label, function in (("skip", skip), ("every", every)):
                    encoded["count"] = 0
                    started = time.perf_counter()
                    maps[label], _ = sliding_window_scores(slices, brain, function, predictor.patch,
                                                           step_fraction=predictor.tile_step,
                                                           batch_windows=predictor.batch_windows)
                    seconds[label].append(time.perf_counter() - started)
                    counts[label] = encoded["count"]
        difference = float((maps["skip"] - maps["every"])[brain].abs().max())
        share = 1 - counts["skip"] / counts["every"]
        print(f"{name}: every sub-patch {min(seconds['every']):.1f} s, brain only {min(seconds['skip']):.1f} s "
              f"(×{min(seconds['every']) / min(seconds['skip']):.2f}); sub-patches skipped {share:.0%}; "
              f"largest map difference inside the brain {difference:.3g}")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:  # it writes nothing, so nothing is left half done
        print("cutpaste_scoring.py: interrupted; nothing was written", file=sys.stderr)
        raise SystemExit(130)
