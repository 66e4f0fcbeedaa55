"""How hard is the synthetic benchmark? AP and best Dice of plain intensity baselines, per lesion kind.

Scores per voxel (each channel divided by its 98th percentile inside the brain mask, as the
pipeline normalises, but not clipped, so bright voxels keep their order):
  T2            the T2 intensity (lesions are T2-bright)
  -T1           the negative T1 intensity (lesions are T1-dark)
  |T1 - median|, |T2 - median|   distance from the volume's median brain intensity
  joint T1/T2   novelty in the joint (T1, T2) intensity histogram of the healthy training cases'
                brain voxels: -log of the smoothed histogram density (64 x 64 bins over [0, 1.5]^2)
Voxels of all test volumes of one kind are pooled (brain mask only); AP is scikit-learn's
average_precision_score, best Dice the maximum of 2PR/(P+R) over the precision-recall curve.

    python benchmarks/synthetic_baselines.py -d 900
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage
from sklearn.metrics import average_precision_score, precision_recall_curve

from disyre_v2.dataset.dataset_json import load_dataset_json
from disyre_v2.dataset.layout import list_raw_cases
from disyre_v2.dataset_conversion.synthetic.builder import SIDECAR_NAME
from disyre_v2.imageio.reader import read_case, read_label, read_mask
from disyre_v2.paths import raw_folder, resolve_dataset_name

BASELINES = ("T2", "-T1", "|T1 - median|", "|T2 - median|", "joint T1/T2")
JOINT_BINS, JOINT_RANGE, JOINT_SMOOTHING = 64, 1.5, 1.0


class JointHistogram:
    """Healthy (T1, T2) intensity density; a voxel's score is -log of the density at its intensities."""

    def __init__(self):
        self.counts = np.zeros((JOINT_BINS, JOINT_BINS))

    def _index(self, t1: np.ndarray, t2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scale = JOINT_BINS / JOINT_RANGE
        return (np.clip((t1 * scale).astype(int), 0, JOINT_BINS - 1), np.clip((t2 * scale).astype(int), 0, JOINT_BINS - 1))

    def add(self, t1: np.ndarray, t2: np.ndarray) -> None:
        np.add.at(self.counts, self._index(t1, t2), 1)

    def scores(self, t1: np.ndarray, t2: np.ndarray) -> np.ndarray:
        density = ndimage.gaussian_filter(self.counts, JOINT_SMOOTHING)
        density /= density.sum()
        return -np.log(density[self._index(t1, t2)] + 1e-9)


def normalised_channels(image: np.ndarray, mask: np.ndarray, channels: dict[str, int]) -> dict[str, np.ndarray]:
    """Brain voxels of each channel divided by the channel's 98th brain percentile."""
    normalised = {}
    for name, c in channels.items():
        values = image[c][mask]
        normalised[name] = values / max(float(np.percentile(values, 98)), 1e-6)
    return normalised


def fit_joint_histogram(folder: Path, dataset_json: dict, channels: dict[str, int]) -> JointHistogram:
    joint = JointHistogram()
    for case in list_raw_cases(folder, "Tr", dataset_json):
        image, geometry = read_case(case.image_paths)
        mask = read_mask(case.mask_path, geometry, case.image_paths[0]) > 0 if case.mask_path else (image > 0).any(0)
        normalised = normalised_channels(image, mask, channels)
        joint.add(normalised["T1"], normalised["T2"])
    return joint


def voxel_scores(image: np.ndarray, mask: np.ndarray, channels: dict[str, int], joint: JointHistogram) -> dict[str, np.ndarray]:
    """Baseline scores of the brain voxels of one case (image: C, Z, Y, X)."""
    normalised = normalised_channels(image, mask, channels)
    t1, t2 = normalised["T1"], normalised["T2"]
    return {"T2": t2, "-T1": -t1, "|T1 - median|": np.abs(t1 - np.median(t1)), "|T2 - median|": np.abs(t2 - np.median(t2)),
            "joint T1/T2": joint.scores(t1, t2)}


def ap_and_dice(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    if not labels.any():
        return float("nan"), float("nan")
    precision, recall, _ = precision_recall_curve(labels, scores)
    dice = np.max(2 * precision * recall / np.maximum(precision + recall, 1e-12))
    return float(average_precision_score(labels, scores)), float(dice)


def evaluate(folder: Path) -> dict:
    dataset_json = load_dataset_json(folder)
    sidecar_path = folder / SIDECAR_NAME
    if not sidecar_path.is_file():
        raise FileNotFoundError(f"{sidecar_path} is missing: is {folder} a dataset written by disyre_v2_make_synthetic_dataset?")
    kinds = json.loads(sidecar_path.read_text())["test_kinds"]
    channels = {name: int(c) for c, name in dataset_json["channel_names"].items()}
    joint = fit_joint_histogram(folder, dataset_json, channels)
    pooled: dict[str, dict[str, list]] = {}
    for case in list_raw_cases(folder, "Ts", dataset_json):
        image, geometry = read_case(case.image_paths)
        mask = read_mask(case.mask_path, geometry, case.image_paths[0]) > 0
        label = read_label(case.label_path, geometry, case.image_paths[0])[mask] > 0
        scores = voxel_scores(image, mask, channels, joint)
        for group in (kinds[case.case_id], "all"):
            entry = pooled.setdefault(group, {"labels": [], "cases": 0, **{b: [] for b in BASELINES}})
            entry["labels"].append(label)
            entry["cases"] += 1
            for b in BASELINES:
                entry[b].append(scores[b].astype(np.float32))
    results = {}
    for group, entry in pooled.items():
        labels = np.concatenate(entry["labels"])
        results[group] = {"cases": entry["cases"], "lesion_percent": 100.0 * float(labels.mean()),
                          **{b: ap_and_dice(labels, np.concatenate(entry[b])) for b in BASELINES}}
    return results


def table(results: dict) -> str:
    order = [k for k in ("brats", "atlas", "subtle", "healthy") if k in results] + ["all"]
    lines = ["| kind | cases | lesion % of brain | " + " | ".join(f"{b} AP / [Dice]" for b in BASELINES) + " |",
             "| --- | ---: | ---: | " + " | ".join("---:" for _ in BASELINES) + " |"]
    for kind in order:
        r = results[kind]
        cells = " | ".join("-" if np.isnan(r[b][0]) else f"{r[b][0]:.3f} / {r[b][1]:.3f}" for b in BASELINES)
        lines.append(f"| {kind} | {r['cases']} | {r['lesion_percent']:.2f} | {cells} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("-d", dest="dataset", help="dataset id or name in $DISYRE_raw")
    where.add_argument("--folder", type=Path, help="path of a raw synthetic dataset folder")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    folder = args.folder if args.folder else raw_folder() / resolve_dataset_name(args.dataset, [raw_folder()])
    results = evaluate(folder)
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
