"""One configuration of a loaded plans.json, checked to hold what every later stage reads.

The lowest piece of the plans: preprocessing reads its configuration through it, planning (which
writes the plans) and the stages after it through disyre_v2.planning.plans, which re-exports it.
"""
from __future__ import annotations

from disyre_v2.errors import UserError

# Keys every configuration must have: later stages read them without further checks.
REQUIRED_CONFIGURATION_KEYS = (
    "data_identifier", "spacing", "resample", "slice_axis", "patch_size", "batch", "normalization",
    "network", "schedule", "anomaly_synthesis", "tissue_centroids", "augmentation", "training", "inference",
)


class PlansError(UserError):
    """plans.json is missing, malformed, or lacks what was asked of it."""


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
