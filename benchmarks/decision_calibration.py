"""Operating points calibrated on healthy scans, measured on the synthetic benchmark (issue: from
anomaly maps to decisions). Run by hand:

    python benchmarks/decision_calibration.py -o decisions_run --seeds 0 1 --steps 2000

Under -o it makes (or reuses) the synthetic benchmark Dataset992 exactly as detection_ablation.py
does, trains (or reuses) one ``2d_small`` model per seed on all its healthy training cases, and makes
two more sets with other generator seeds: a *calibration set* of healthy subjects (its imagesTr,
disjoint from every test set) and a *fresh final set* with lesions, generated for this study and
used for nothing but its final figures. Then, with the seeds averaged as disyre_v2_predict does:

1. ``disyre_v2_calibrate``'s code on the calibration set (timed: seconds per healthy scan);
2. ``disyre_v2_predict``'s code on the benchmark's test set and on the fresh final set (timed), and
   the extra time of ``--binary`` per case (thresholding, lesion table, mask written);
3. ``disyre_v2_evaluate``'s code at the calibrated threshold of each rate in ``--rates``: realised
   voxel false-positive rate on the lesion-free volumes ÷ the rate, Dice (pooled, per lesion kind)
   next to the oracle [Dice], lesion-wise sensitivity for reference lesions ≥ 1 ml, false-positive
   components per lesion-free volume, and the volume-level specificity and sensitivity of the flag
   at ``--volume_alpha``, and each lesion-free volume's realised rate ÷ target;
4. calibration error by subject: the calibration set's own maps (written under -o/maps), each healthy
   subject held out in turn, its realised rate at the threshold of the other subjects' pooled voxels.

The default ``--voxel_fpr`` of disyre_v2_predict is chosen on the test set's figures (rows marked
``choose``) and confirmed on the fresh final set (``final``). It prints Markdown tables and writes
-o/decision_calibration.json.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from detection_ablation import add_synthetic_dataset_flags, synthetic_dataset_in  # noqa: E402
from inference_precision import first_cases  # noqa: E402

from disyre_v2.dataset_conversion.synthetic.builder import make_synthetic_dataset  # noqa: E402
from disyre_v2.evaluation.evaluator import evaluate_folders  # noqa: E402
from disyre_v2.imageio.reader import read_image  # noqa: E402
from disyre_v2.imageio.writer import write_mask  # noqa: E402
from disyre_v2.inference.calibrate import calibrate, prediction_settings  # noqa: E402
from disyre_v2.inference.calibration import (calibration_path, exceedance_thresholds, load_calibration,  # noqa: E402
                                             volume_p_value)
from disyre_v2.inference.decisions import BinaryDecision  # noqa: E402
from disyre_v2.inference.predict_folder import predict_folder  # noqa: E402
from disyre_v2.inference.predictor import DisyrePredictor  # noqa: E402
from disyre_v2.training.run_training import train  # noqa: E402

CONFIGURATION = "2d_small"
CALIBRATION_ID, FINAL_ID = 996, 997


def sets_in(output: Path, args: argparse.Namespace) -> tuple[Path, Path]:
    """The healthy calibration set and the fresh final set (made once, under -o/raw)."""
    raw = output / "raw"
    calibration = raw / f"Dataset{CALIBRATION_ID}_CalibrationHealthy"
    if not calibration.is_dir():
        make_synthetic_dataset(CALIBRATION_ID, args.n_calibration, 1, seed=args.calibration_seed,
                               name="CalibrationHealthy", num_processes=2, raw_base=raw, montage=False)
    final = raw / f"Dataset{FINAL_ID}_FreshFinal"
    if not final.is_dir():
        make_synthetic_dataset(FINAL_ID, 1, args.n_final, seed=args.final_seed, name="FreshFinal", num_processes=2,
                               lesion_free_fraction=0.5, raw_base=raw, montage=False)
    return calibration, final


def trained_model(output: Path, dataset: str, seeds: list[int], steps: int) -> Path:
    folder = output / "results" / dataset / f"DisyreTrainer__DisyrePlans__{CONFIGURATION}"
    for seed in seeds:
        run = folder / f"fold_all_seed_{seed}"
        if not (run / "checkpoint_final.pth").is_file():  # a killed training continues from its last checkpoint
            train(dataset, CONFIGURATION, "all", seed=seed, num_steps=steps, resume=(run / "checkpoint_latest.pth").is_file())
    return folder


def binary_cost(maps: Path, images: Path, decision: BinaryDecision) -> tuple[float, int]:
    """CPU seconds of --binary's extra work over the maps of a folder (threshold, lesions, p-value, mask)."""
    start = time.process_time()
    count = 0
    for path in sorted(maps.glob("*.nii.gz")):
        if path.name.endswith(("_mask.nii.gz", "_std.nii.gz")):
            continue
        score_map, geometry = read_image(path)
        brain = score_map > 0
        mask, _ = decision.apply(score_map, brain, geometry, path.name[:-7], float(score_map[brain].max()))
        write_mask(mask, geometry, maps / "cost_check" / path.name)
        count += 1
    return time.process_time() - start, count


def figures_at(maps: Path, labels: Path, threshold: float, flags: dict[str, bool], report: Path | None = None) -> dict:
    summary = evaluate_folders(maps, labels, output=maps / f"summary_{threshold:.6g}.json", threshold=threshold,
                               progress=False, report_dir=report)
    point = summary["operating_point"]
    large = [band for name, band in point["lesion_wise"]["sensitivity_by_size"].items()
             if name.startswith("1-") or name.startswith(">=")]
    lesions, found = sum(b["lesions"] for b in large), sum(b["found"] for b in large)
    free = [c for c in summary["per_case"] if not c.get("anomalous", True)]
    free_ids = {c["case_id"] for c in free}
    anomalous_ids = {c["case_id"] for c in summary["per_case"]} - free_ids
    return {
        "dice": point["pooled"]["dice"], "oracle_dice": point["oracle"]["best_dice"],
        "per_kind": {kind: {"dice": block["pooled"]["dice"],
                            "oracle_dice": summary.get("per_kind", {}).get(kind, {}).get("best_dice")}
                     for kind, block in point.get("per_kind", {}).items()},
        "voxel_fpr_lesion_free": point["lesion_free_volumes"]["voxel_false_positive_rate"],
        "lesion_free_volumes": point["lesion_free_volumes"]["volumes"],
        "sensitivity_1ml": found / lesions if lesions else None, "lesions_1ml": lesions,
        "fp_components_per_lesion_free_volume": point["lesion_free_volumes"]["false_positive_components_per_volume"],
        "flag_specificity": _share([not flags[c] for c in free_ids if c in flags]),
        "flag_sensitivity": _share([flags[c] for c in anomalous_ids if c in flags]),
        "ap": summary["pooled"]["average_precision"], "volume_auroc": summary["volume_level"]["auroc"],
    }


def brain_scores(maps: Path, masks: Path) -> dict[str, np.ndarray]:
    """Each written map's scores on its brain mask (the voxels calibration and evaluation count)."""
    scores = {}
    for path in sorted(maps.glob("*.nii.gz")):
        if path.name.endswith(("_mask.nii.gz", "_std.nii.gz")):
            continue
        case = path.name[:-7]
        score_map, _ = read_image(path)
        brain, _ = read_image(masks / path.name)
        scores[case] = np.asarray(score_map, np.float32)[np.asarray(brain) > 0]
    return scores


def leave_one_subject_out(healthy: dict[str, np.ndarray], rates: list[float]) -> dict:
    """Calibration error a new healthy subject meets: for each healthy subject, the threshold from the
    pooled voxels of all the others (exactly as disyre_v2_calibrate computes it) and that subject's
    realised exceedance. Per rate: the pooled realised rate ÷ target over all held-out subjects
    (≈ 1 when calibration is unbiased) and the spread of the per-subject ratios (how far one scan
    falls from the target)."""
    cases = sorted(healthy)
    out = {}
    for rate in rates:
        exceeding, voxels, ratios = 0, 0, []
        for case in cases:
            others = np.concatenate([healthy[c] for c in cases if c != case])
            threshold = float(exceedance_thresholds(others, [rate])[0])
            above = int(np.count_nonzero(healthy[case] > threshold))
            exceeding, voxels = exceeding + above, voxels + healthy[case].size
            ratios.append(above / healthy[case].size / rate)
        ratios = np.asarray(ratios)
        out[f"{rate:g}"] = {"pooled_ratio": exceeding / voxels / rate, "median_ratio": float(np.median(ratios)),
                            "p10_ratio": float(np.percentile(ratios, 10)),
                            "p90_ratio": float(np.percentile(ratios, 90)),
                            "max_ratio": float(ratios.max()),
                            "share_from_top_subject": float(ratios.max() / ratios.sum()) if ratios.sum() else None}
    return out


def per_volume_ratios(scores: dict[str, np.ndarray], free: list[str], thresholds: dict[str, float]) -> dict:
    """Realised exceedance ÷ target of each lesion-free volume at each rate's calibrated threshold."""
    return {rate: {case: float(np.count_nonzero(scores[case] > threshold) / scores[case].size / float(rate))
                   for case in free} for rate, threshold in thresholds.items()}


def _share(values: list[bool]) -> float | None:
    return float(np.mean(values)) if values else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", type=Path, default=Path("decisions_run"), help="working folder")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="training seeds, averaged (default 0 1)")
    parser.add_argument("--steps", type=int, default=2000, help="training steps per model (default 2000)")
    add_synthetic_dataset_flags(parser)
    parser.add_argument("--n_calibration", type=int, default=20, help="healthy calibration subjects (default 20)")
    parser.add_argument("--calibration_seed", type=int, default=5151, help="generator seed of the calibration set")
    parser.add_argument("--n_final", type=int, default=40, help="cases of the fresh final set (default 40, half "
                        "lesion-free)")
    parser.add_argument("--final_seed", type=int, default=4243, help="generator seed of the fresh final set")
    parser.add_argument("--final_cases", type=int, default=None, metavar="N",
                        help="score only the first N cases of the fresh final set (default: all)")
    parser.add_argument("--rates", type=float, nargs="+", default=[1e-2, 3e-3, 1e-3, 3e-4, 1e-4],
                        help="voxel false-positive rates to measure")
    parser.add_argument("--volume_alpha", type=float, default=0.05, help="alpha of the volume flag (default 0.05)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    output = args.output.resolve()
    dataset = synthetic_dataset_in(output, args)
    model = trained_model(output, dataset, args.seeds, args.steps)
    calibration_set, final_set = sets_in(output, args)

    def make_predictor(folds):
        return DisyrePredictor.from_model_folder(model, CONFIGURATION, ["all"], args.seeds, "final", "cpu")

    timing = output / "calibration_seconds.json"
    path = calibration_path(model, prediction_settings(make_predictor(None), model, "final"))
    if not (path.is_file() and timing.is_file()):  # a rerun reuses the calibration and its timing
        started = time.perf_counter()
        path = calibrate(make_predictor, model, "final", healthy_folder=calibration_set / "imagesTr",
                         masks_folder=calibration_set / "masksTr", progress=False)
        timing.write_text(json.dumps({"seconds_per_healthy_scan": (time.perf_counter() - started) / args.n_calibration}))
    calibration_seconds = json.loads(timing.read_text())["seconds_per_healthy_scan"]
    calibration = load_calibration(path)
    predictor = make_predictor(None)
    if args.final_cases is not None:
        final_set = first_cases(final_set, output / "raw_subsets" / f"{final_set.name}_first{args.final_cases}",
                                args.final_cases)
    sets = {"choose: test set (Dataset992)": output / "raw" / dataset, "final: fresh final set": final_set}
    results = {"calibration": {"file": str(path), "healthy_scans": calibration.num_volumes,
                               "healthy_voxels": calibration.num_voxels,
                               "seconds_per_healthy_scan": calibration_seconds}, "sets": {}}
    # Calibration error by subject: the calibration set's own maps, each subject held out in turn.
    healthy_maps = output / "maps" / f"{calibration_set.name}_imagesTr"
    predict_folder(predictor, calibration_set / "imagesTr", healthy_maps,
                   masks_folder=calibration_set / "masksTr", resume=True)
    results["calibration"]["leave_one_subject_out"] = leave_one_subject_out(
        brain_scores(healthy_maps, calibration_set / "masksTr"), args.rates)
    for label, folder in sets.items():
        maps = output / "maps" / folder.name
        cases = len(list((folder / "imagesTs").glob("*_0000.nii.gz")))
        times = output / f"predict_seconds_{folder.name}.json"
        if not times.is_file():  # a rerun reuses finished maps (--continue) and the first run's timing
            started = time.perf_counter()
            done = len(list(maps.glob(".*.json"))) if maps.is_dir() else 0
            predict_folder(predictor, folder / "imagesTs", maps, resume=True)
            if done == 0:
                times.write_text(json.dumps({"seconds_per_case": (time.perf_counter() - started) / cases}))
        predict_seconds = json.loads(times.read_text())["seconds_per_case"] if times.is_file() else float("nan")
        volume_scores = {row["case_id"]: row["volume_score"] for row in
                         (json.loads(p.read_text()) for p in maps.glob(".*.json"))}
        flags = {case: volume_p_value(calibration.volume_scores, score) <= args.volume_alpha
                 for case, score in volume_scores.items()}
        decision = BinaryDecision.from_calibration(calibration, path, 1e-3, args.volume_alpha, 0.0)
        cost, count = binary_cost(maps, folder / "imagesTs", decision)
        rows = {}
        for rate in args.rates:
            threshold = calibration.voxel_threshold(rate)
            report = output / "reports" / folder.name if rate == 1e-3 else None
            rows[f"{rate:g}"] = {"threshold": threshold,
                                 **figures_at(maps, folder / "labelsTs", threshold, flags, report)}
            rows[f"{rate:g}"]["fpr_ratio"] = rows[f"{rate:g}"]["voxel_fpr_lesion_free"] / rate
        case_kinds = json.loads((folder / "synthetic_cases.json").read_text())["cases"]
        free = sorted(c for c, info in case_kinds.items() if info["split"] == "Ts" and info["kind"] == "healthy"
                      and (maps / f"{c}.nii.gz").is_file())
        by_volume = per_volume_ratios(brain_scores(maps, folder / "masksTs"), free,
                                      {rate: row["threshold"] for rate, row in rows.items()})
        for rate, ratios in by_volume.items():
            values = np.asarray(list(ratios.values()))
            rows[rate]["fpr_ratio_by_volume"] = {"median": float(np.median(values)), "min": float(values.min()),
                                                 "max": float(values.max()), "volumes": ratios}
        results["sets"][label] = {"cases": cases, "predict_seconds_per_case": predict_seconds,
                                  "binary_cpu_seconds_per_case": cost / max(count, 1), "rates": rows}
    (output / "decision_calibration.json").write_text(json.dumps(results, indent=2))
    print(f"calibration: {calibration.num_volumes} healthy scans, {calibration.num_voxels:,} voxels, "
          f"{calibration_seconds:.1f} s per scan")
    print("\n### Calibration error by subject (leave one healthy calibration subject out)\n")
    print("| rate | pooled realised / rate | median per subject | 10th-90th percentile | max | share of the top subject |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for rate, row in results["calibration"]["leave_one_subject_out"].items():
        print(f"| {rate} | {row['pooled_ratio']:.2f} | {row['median_ratio']:.2f} | {row['p10_ratio']:.2f}-"
              f"{row['p90_ratio']:.2f} | {row['max_ratio']:.2f} | {_fmt(row['share_from_top_subject'], 2)} |")
    for label, block in results["sets"].items():
        print(f"\n### {label}: {block['cases']} cases, predict {block['predict_seconds_per_case']:.1f} s per case, "
              f"--binary {block['binary_cpu_seconds_per_case']:.3f} CPU s per case "
              f"({100 * block['binary_cpu_seconds_per_case'] / block['predict_seconds_per_case']:.1f} %)\n")
        kinds = sorted({k for row in block["rates"].values() for k in row["per_kind"]})
        print("| rate | threshold | realised FPR / rate | Dice ([Dice]) | " +
              " | ".join(f"{k} Dice ([Dice])" for k in kinds) +
              " | sensitivity ≥ 1 ml | FP components / lesion-free vol | flag specificity | flag sensitivity |")
        print("| --- " * (8 + len(kinds)) + "|")
        for rate, row in block["rates"].items():
            per_kind = " | ".join(f"{_fmt(row['per_kind'][k]['dice'])} ({_fmt(row['per_kind'][k]['oracle_dice'])})"
                                  for k in kinds)
            print(f"| {rate} | {row['threshold']:.4g} | {_fmt(row['fpr_ratio'], 2)} | {_fmt(row['dice'])} "
                  f"({_fmt(row['oracle_dice'])}) | {per_kind} | {_fmt(row['sensitivity_1ml'])} "
                  f"({row['lesions_1ml']}) | {_fmt(row['fp_components_per_lesion_free_volume'], 2)} | "
                  f"{_fmt(row['flag_specificity'])} | {_fmt(row['flag_sensitivity'])} |")
        print("\nRealised FPR / rate of each lesion-free volume (median, min-max): " + "; ".join(
            f"{rate}: {row['fpr_ratio_by_volume']['median']:.2f} ({row['fpr_ratio_by_volume']['min']:.2f}-"
            f"{row['fpr_ratio_by_volume']['max']:.2f})" for rate, row in block["rates"].items()))
    return 0


def _fmt(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


if __name__ == "__main__":
    raise SystemExit(main())
