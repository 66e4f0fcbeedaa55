"""Reading, writing and querying plans.json (see documentation/reference/plans.md).

get_configuration and PlansError live in disyre_v2.plans_access, below preprocessing, which reads them
too; they are re-exported here, where planning and the later stages import them."""
from __future__ import annotations

import json
from pathlib import Path

from disyre_v2.dataset.dataset_json import write_json_atomic
from disyre_v2.plans_access import REQUIRED_CONFIGURATION_KEYS, PlansError, get_configuration  # noqa: F401

PLANS_FILE = "plans.json"
FINGERPRINT_FILE = "dataset_fingerprint.json"
SPLITS_FILE = "splits_final.json"
DATASET_JSON_FILE = "dataset.json"


def load_plans(path: Path | str) -> dict:
    """Read plans.json (give the file or the preprocessed dataset folder holding it)."""
    path = Path(path)
    if path.is_dir():
        path = path / PLANS_FILE
    if not path.is_file():
        raise PlansError(
            f"{path} does not exist. Plan the dataset first: disyre_v2_plan_and_preprocess -d ID."
        )
    try:
        plans = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise PlansError(f"{path} is not valid JSON ({error}). Fix the edit, or re-plan with --clean.") from None
    if not isinstance(plans, dict) or not isinstance(plans.get("configurations"), dict):
        raise PlansError(f"{path} has no 'configurations' mapping; it is not a disyre_v2 plans file.")
    for name, configuration in plans["configurations"].items():
        check_augmentation(configuration.get("augmentation") if isinstance(configuration, dict) else None, name, path)
    return plans


def check_augmentation(augmentation: object, configuration: str, path: Path) -> None:
    """Every ``*_probability`` of a configuration's ``augmentation`` is a number in [0, 1] (a missing
    entry is reported by :func:`get_configuration`, which knows what is asked of it)."""
    if augmentation is None:
        return
    if not isinstance(augmentation, dict):
        raise PlansError(f"the augmentation of configuration {configuration!r} is not a mapping", path,
                         "restore it (documentation/reference/plans.md) or re-plan with --clean")
    for key, value in augmentation.items():
        if not key.endswith("_probability"):
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise PlansError(f"augmentation {key} of configuration {configuration!r} is {value!r}, not a probability "
                             f"in [0, 1]", path,
                             "set it between 0 and 1 (mirror_probability is per in-plane axis), or re-plan with --clean")


def save_plans(plans: dict, path: Path | str) -> Path:
    """Write plans.json atomically (give the file or the folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / PLANS_FILE
    return write_json_atomic(plans, path)


def configuration_names(plans: dict) -> list[str]:
    return sorted(plans.get("configurations", {}))
