"""The whole planning stage in one call: integrity check, fingerprint, plans, splits, preprocessing.

Re-running reuses what is there: the fingerprint (if it covers the same training cases), the plans
(hand edits are kept; missing configurations are added), the splits, and finished cases. ``clean``
recomputes the fingerprint, re-plans and redoes the preprocessing (splits are always kept).
"""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Sequence

from disyre_v2.dataset.dataset_json import load_dataset_json, write_json_atomic
from disyre_v2.dataset.integrity import verify_dataset_integrity
from disyre_v2.dataset.layout import list_raw_cases
from disyre_v2.imageio.atomic import remove_stale_temporaries
from disyre_v2.paths import PREPROCESSED_ENV, preprocessed_folder, raw_folder, resolve_dataset_name, writable_folder
from disyre_v2.planning.defaults import CONFIGURATIONS
from disyre_v2.planning.fingerprint import extract_fingerprint
from disyre_v2.planning.planner import plan_configuration, plans_header
from disyre_v2.planning.plans import (
    DATASET_JSON_FILE,
    FINGERPRINT_FILE,
    PLANS_FILE,
    SPLITS_FILE,
    PlansError,
    load_plans,
    save_plans,
)
from disyre_v2.planning.splits import ensure_splits
from disyre_v2.preprocessing.dataset_preprocessor import preprocess

logger = logging.getLogger(__name__)


def _fingerprint(raw: Path, out: Path, case_ids: list[str], clean: bool, num_workers: int, progress: bool) -> dict:
    path = out / FINGERPRINT_FILE
    if path.is_file() and not clean:
        fingerprint = json.loads(path.read_text(encoding="utf-8"))
        if fingerprint.get("case_ids") != case_ids:
            raise PlansError(
                f"{path} was computed on other training cases than those now in {raw / 'imagesTr'}: the dataset "
                f"changed since planning. Re-plan with --clean (hand edits of plans.json are then lost)."
            )
        logger.info("Using the existing %s (pass --clean to recompute it).", path)
        return fingerprint
    fingerprint = extract_fingerprint(raw, num_workers=num_workers, progress=progress)
    write_json_atomic(fingerprint, path)
    return fingerprint


def _planned_configurations(fingerprint: dict, names: Sequence[str], requested: Sequence[str]) -> dict:
    """Every configuration of ``names`` that fits the data; one that does not is an error only when
    it was requested (else a warning: plans.json then simply lacks it)."""
    planned = {}
    for name in names:
        try:
            planned[name] = plan_configuration(name, fingerprint)
        except PlansError as error:
            if name in requested:
                raise
            logger.warning("Configuration %s is not planned for this dataset: %s", name, error)
    return planned


def _plans(out: Path, fingerprint: dict, configurations: Sequence[str], clean: bool) -> dict:
    """plans.json holds every configuration (as nnU-Net's does); ``configurations`` only chooses what is
    preprocessed now. Existing configurations, hand edits included, are never re-planned without clean."""
    path = out / PLANS_FILE
    if clean or not path.is_file():
        plans = plans_header(fingerprint)
        plans["configurations"] = _planned_configurations(fingerprint, tuple(CONFIGURATIONS), configurations)
        save_plans(plans, path)
        return plans
    plans = load_plans(path)
    missing = [name for name in CONFIGURATIONS if name not in plans["configurations"]]
    added = _planned_configurations(fingerprint, missing, configurations)
    if added:
        plans["configurations"].update(added)
        save_plans(plans, path)
        logger.info("Added configuration(s) %s to %s.", ", ".join(added), path)
    else:
        logger.info("Using the existing %s (pass --clean to re-plan).", path)
    return plans


def _check_configurations(plans_path: Path, configurations: Sequence[str], clean: bool) -> None:
    """Fail before any work on a configuration that can be neither planned nor found in the plans."""
    existing = load_plans(plans_path)["configurations"] if plans_path.is_file() and not clean else {}
    unknown = [c for c in configurations if c not in CONFIGURATIONS and c not in existing]
    if unknown:
        available = sorted(set(CONFIGURATIONS) | set(existing))
        raise PlansError(
            f"Unknown configuration(s) {', '.join(unknown)}; available: {', '.join(available)}. A configuration "
            f"of your own must first be added to {plans_path} by hand."
        )


def plan_and_preprocess(dataset: str | int, configurations: Sequence[str] = tuple(CONFIGURATIONS),
                        num_workers: int = 1, verify_integrity: bool = False, clean: bool = False,
                        preprocess_data: bool = True, progress: bool = True) -> Path:
    """Plan (and preprocess) dataset ``dataset`` (id or full name); returns its preprocessed folder.

    ``configurations`` are planned ones (2d, 2d_small) or configurations added by hand to an
    existing plans.json (preprocessed as they stand, unless ``clean``).
    """
    if not configurations:
        raise PlansError(f"No configuration requested; choose among {', '.join(CONFIGURATIONS)}.")
    name = resolve_dataset_name(dataset, [raw_folder()])
    raw = raw_folder() / name
    writable_folder(preprocessed_folder(), f"${PREPROCESSED_ENV}")  # before any work, creating nothing inside
    out = preprocessed_folder() / name
    _check_configurations(out / PLANS_FILE, configurations, clean)
    if verify_integrity:
        verify_dataset_integrity(raw, progress=progress)
    dataset_json = load_dataset_json(raw)
    case_ids = [case.case_id for case in list_raw_cases(raw, "Tr", dataset_json)]
    if not case_ids:
        raise ValueError(f"{raw / 'imagesTr'} holds no training case: planning needs healthy training data.")
    if dataset_json.get("numTraining") != len(case_ids):
        logger.warning("%s says numTraining is %s, but %s holds %d case(s): planning uses the %d found. Fix "
                       "numTraining (--verify_dataset_integrity refuses the mismatch).", raw / DATASET_JSON_FILE,
                       dataset_json.get("numTraining"), raw / "imagesTr", len(case_ids), len(case_ids))

    # A first planning that fails (a NaN or truncated training image, a configuration that does not fit)
    # leaves no dataset folder behind; a re-run keeps what an earlier planning made.
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(out)  # e.g. a dataset.json being written when planning was killed
        write_json_atomic(json.loads((raw / DATASET_JSON_FILE).read_text(encoding="utf-8")), out / DATASET_JSON_FILE)
        fingerprint = _fingerprint(raw, out, case_ids, clean, num_workers, progress)
        plans = _plans(out, fingerprint, configurations, clean)
        ensure_splits(out / SPLITS_FILE, case_ids)
        if preprocess_data:
            preprocess(raw, out, plans, configurations, num_workers=num_workers, clean=clean, progress=progress)
    except Exception:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    logger.info("Planned%s %s: %s", " and preprocessed" if preprocess_data else "", name, out)
    return out
