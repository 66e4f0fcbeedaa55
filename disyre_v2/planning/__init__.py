"""Fingerprint, tissue clusters (k-Means), planner, plans access and splits.

Names are imported lazily (PEP 562): a worker process that only needs plans access does not pay
for importing scikit-learn.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "extract_fingerprint": "disyre_v2.planning.fingerprint",
    "plan": "disyre_v2.planning.planner",
    "plan_configuration": "disyre_v2.planning.planner",
    "PlansError": "disyre_v2.planning.plans",
    "get_configuration": "disyre_v2.planning.plans",
    "load_plans": "disyre_v2.planning.plans",
    "save_plans": "disyre_v2.planning.plans",
    "SplitsError": "disyre_v2.planning.splits",
    "ensure_splits": "disyre_v2.planning.splits",
    "load_splits": "disyre_v2.planning.splits",
    "make_splits": "disyre_v2.planning.splits",
    "plan_and_preprocess": "disyre_v2.planning.plan_and_preprocess_api",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
