"""Trainers by name: an explicit registry (no scanning of modules for class names)."""
from __future__ import annotations

from disyre_v2.training.trainer.base import DisyreTrainer
from disyre_v2.training.trainer.baselines import BASELINE_TRAINERS
from disyre_v2.training.trainer.cutpaste import CutPasteTrainer
from disyre_v2.training.trainer.mood22 import Mood22Trainer
from disyre_v2.training.trainer.pii import PiiTrainer
from disyre_v2.training.trainer.rvae import RVaeTrainer
from disyre_v2.training.trainer.variants import VARIANTS

# The comparison methods of the paper's Table 1 that have a module of their own (comparison.md).
TABLE1_TRAINERS = [RVaeTrainer, PiiTrainer, CutPasteTrainer, Mood22Trainer]
TRAINERS: dict[str, type[DisyreTrainer]] = {
    "DisyreTrainer": DisyreTrainer, **{c.__name__: c for c in VARIANTS + BASELINE_TRAINERS + TABLE1_TRAINERS}}


def trainer_names() -> list[str]:
    return sorted(TRAINERS)


def get_trainer_class(name: str) -> type[DisyreTrainer]:
    try:
        return TRAINERS[name]
    except KeyError:
        raise ValueError(f"Unknown trainer {name!r}; available: {', '.join(trainer_names())}.") from None
