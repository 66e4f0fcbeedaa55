"""disyre_v2_calibrate's work: score held-out healthy scans exactly as predict will, and keep the figures.

Healthy scans come from a folder (``-i``) or, by default, from the validation cases of the trained
folds, each case scored only by the models of the fold it was held out of (the models that never
trained on it). The maps are made by the same predictor, with the same settings, as
``disyre_v2_predict``'s, on the input's grid and masked by the input's brain, so the healthy voxel
scores are the ones a patient's healthy tissue would get.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from tqdm import tqdm

from disyre_v2.dataset.dataset_json import load_dataset_json
from disyre_v2.dataset.layout import list_raw_cases
from disyre_v2.errors import UserError
from disyre_v2.inference.calibration import (
    DEFAULT_VOXEL_FPR,
    Calibration,
    calibration_path,
    calibration_warnings,
)
from disyre_v2.inference.model_loading import available_runs, model_name
from disyre_v2.inference.predict_folder import default_masks_folder, find_input_cases
from disyre_v2.inference.predictor import DisyrePredictor
from disyre_v2.inference.volume_score import volume_score

logger = logging.getLogger(__name__)

# Builds a predictor for the given folds (None: the asked ones) with every other setting fixed.
PredictorFactory = Callable[[Sequence[str] | None], DisyrePredictor]


@dataclass(frozen=True)
class HealthyCase:
    case_id: str
    images: list[Path]
    mask: Path | None


def prediction_settings(predictor: DisyrePredictor, model_folder: Path | str, checkpoint: str,
                        runs: Sequence[str] | None = None) -> dict:
    """What a calibration holds for: the model, its runs (folds × seeds averaged) and every setting
    that changes a map. ``runs`` defaults to the predictor's own models."""
    described = predictor.describe()
    names = sorted(runs) if runs is not None else sorted(Path(m).name for m in described["models"])
    # The model's own name (an exported model unzipped under another folder name keeps its calibrations).
    settings = {"model": model_name(model_folder), "configuration": predictor.configuration_name,
                "checkpoint": checkpoint, "runs": names, "score": described["score"], "levels": described["levels"],
                "tile_step": predictor.tile_step, "median_filter_size": described["median_filter_size"],
                "precision": described["precision"]}
    return settings


def validation_groups(model_folder: Path, folds: Sequence[str] | None, seeds: Sequence[int] | None,
                      splits_file: Path, raw_dataset: Path, what_to_pass: str) -> list[tuple[str, list[HealthyCase]]]:
    """(fold, its validation cases) for every trained fold asked for; fold ``all`` has none."""
    runs = [(f, s) for f, s in available_runs(model_folder) if seeds is None or s in set(seeds)]
    trained = sorted({f for f, _ in runs})
    asked = [str(f) for f in folds] if folds is not None else trained
    if "all" in asked or not asked:
        raise UserError("fold 'all' trained on every healthy case, so no held-out case is left to calibrate on",
                        model_folder, f"train folds 0-4 and calibrate on their validation cases, or pass {what_to_pass}")
    if not splits_file.is_file():
        raise UserError("the validation cases of the folds are listed in splits_final.json, which is missing",
                        splits_file, f"run disyre_v2_plan_and_preprocess for the dataset, or pass {what_to_pass}")
    splits = json.loads(splits_file.read_text(encoding="utf-8"))
    dataset_json = load_dataset_json(raw_dataset)
    by_id = {case.case_id: case for case in list_raw_cases(raw_dataset, "Tr", dataset_json)}
    groups = []
    for fold in asked:
        if int(fold) >= len(splits):
            raise UserError(f"fold {fold} is not in splits_final.json ({len(splits)} folds)", splits_file,
                            "give folds that exist")
        missing = [c for c in splits[int(fold)]["val"] if c not in by_id]
        if missing:
            raise UserError(f"validation case(s) {', '.join(missing[:5])} of fold {fold} are not in imagesTr",
                            raw_dataset / "imagesTr", "calibrate with the raw dataset the model was trained on")
        cases = [HealthyCase(c, list(by_id[c].image_paths), by_id[c].mask_path) for c in splits[int(fold)]["val"]]
        groups.append((fold, cases))
    return groups


def folder_cases(healthy_folder: Path, num_channels: int, masks_folder: Path | None) -> list[HealthyCase]:
    masks = masks_folder if masks_folder is not None else default_masks_folder(healthy_folder)
    return [HealthyCase(case_id, files, mask) for case_id, files, mask in
            find_input_cases(healthy_folder, num_channels, masks)]


def calibrate(make_predictor: PredictorFactory, model_folder: Path | str, checkpoint: str, *,
              folds: Sequence[str] | None = None, seeds: Sequence[int] | None = None,
              healthy_folder: Path | str | None = None, masks_folder: Path | str | None = None,
              splits_file: Path | None = None, raw_dataset: Path | None = None,
              voxel_fpr: float = DEFAULT_VOXEL_FPR, progress: bool = True) -> Path:
    """Score the healthy scans and write ``MODEL_FOLDER/calibrations/calibration_<key>.json``."""
    model_folder = Path(model_folder)
    if healthy_folder is not None:
        predictor = make_predictor(folds)
        cases = folder_cases(Path(healthy_folder), len(predictor.plans["channel_names"]),
                             Path(masks_folder) if masks_folder is not None else None)
        plan = [(predictor, cases)]
        source = f"healthy scans in {Path(healthy_folder).resolve()}"
    else:
        groups = validation_groups(model_folder, folds, seeds, splits_file, raw_dataset, "-i HEALTHY_FOLDER")
        plan = [(None, cases) for _, cases in groups]
        source = f"validation cases of folds {', '.join(fold for fold, _ in groups)} (each scored by its own fold)"
        folds_of_plan = [fold for fold, _ in groups]
    voxels: list[np.ndarray] = []
    volumes: list[float] = []
    names: list[str] = []
    runs: set[str] = set()
    settings = None
    total = sum(len(cases) for _, cases in plan)
    with tqdm(total=total, desc="calibrating", unit="case", disable=not progress) as bar:
        for index, (predictor, cases) in enumerate(plan):
            if predictor is None:  # one fold at a time: its models score its held-out cases only
                predictor = make_predictor([folds_of_plan[index]])
            fold_settings = prediction_settings(predictor, model_folder, checkpoint, runs=[])
            if settings is not None and fold_settings != settings:
                raise UserError(f"the folds' models are scored differently ({fold_settings} vs {settings})",
                                model_folder, "calibrate folds of one training set-up")
            settings = fold_settings
            runs.update(Path(m.run_folder).name for m in predictor.models)
            for case in cases:
                raw_map, _, properties = predictor.predict_case(case.images, case.mask)
                brain = properties["raw_mask"]
                voxels.append(raw_map[brain].astype(np.float32))
                volumes.append(volume_score(raw_map, brain))
                names.append(case.case_id)
                bar.update(1)
    settings = {**settings, "runs": sorted(runs)}
    scores = np.concatenate(voxels)
    for warning in calibration_warnings(scores.size, len(volumes), voxel_fpr):
        logger.warning("Calibration: %s.", warning)
    calibration = Calibration.from_healthy(settings, scores, volumes, names, source)
    path = calibration.save(calibration_path(model_folder, settings))
    logger.info("Calibrated on %d healthy scan(s), %d voxels: voxel threshold %.6g at a false-positive rate of %g.",
                len(volumes), scores.size, calibration.voxel_threshold(voxel_fpr), voxel_fpr)
    return path
