"""Reading, writing and querying plans.json (see documentation/reference/plans.md)."""
from __future__ import annotations

import json
from pathlib import Path

from disyre_v2.dataset.dataset_json import write_json_atomic

PLANS_FILE = "plans.json"
FINGERPRINT_FILE = "dataset_fingerprint.json"
SPLITS_FILE = "splits_final.json"
DATASET_JSON_FILE = "dataset.json"

# Keys every configuration must have: later stages read them without further checks.
REQUIRED_CONFIGURATION_KEYS = (
    "data_identifier", "spacing", "resample", "slice_axis", "patch_size", "batch", "normalization",
    "network", "schedule", "anomaly_synthesis", "tissue_centroids", "augmentation", "training", "inference",
)


class PlansError(ValueError):
    """plans.json is missing, malformed, or lacks what was asked of it."""


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
    return plans


def save_plans(plans: dict, path: Path | str) -> Path:
    """Write plans.json atomically (give the file or the folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / PLANS_FILE
    return write_json_atomic(plans, path)


def get_configuration(plans: dict, name: str) -> dict:
    """The configuration ``name`` of ``plans``; a clear error lists the available ones."""
    configurations = plans.get("configurations", {})
    if name not in configurations:
        available = ", ".join(sorted(configurations)) or "none"
        raise PlansError(
            f"Configuration {name!r} is not in the plans of {plans.get('dataset_name', 'this dataset')} "
            f"(available: {available}). Plan it with disyre_v2_plan_and_preprocess -c {name}."
        )
    configuration = configurations[name]
    missing = [key for key in REQUIRED_CONFIGURATION_KEYS if key not in configuration]
    if missing:
        raise PlansError(
            f"Configuration {name!r} of {plans.get('dataset_name', 'the plans')} lacks {', '.join(missing)}; "
            f"restore them (documentation/reference/plans.md) or re-plan with --clean."
        )
    return configuration


def configuration_names(plans: dict) -> list[str]:
    return sorted(plans.get("configurations", {}))
