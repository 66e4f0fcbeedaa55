"""Trainer variants: one attribute each (the paper's ablation, Table 2) and short runs for tests."""
from __future__ import annotations

from disyre_v2.training.trainer.base import DisyreTrainer


class DisyreTrainerFPI(DisyreTrainer):
    """DISYRE v1 corruption: foreign-patch interpolation, t from α_text."""

    synthesis_mode = "fpi"


class DisyreTrainerUnconditional(DisyreTrainer):
    """DAG corruption, network without the level input (Unconditional+DAG)."""

    conditional = False
    scores = ("unconditional",)


class DisyreTrainerFPIUnconditional(DisyreTrainer):
    """FPI corruption, network without the level input (Unconditional+FPI)."""

    synthesis_mode = "fpi"
    conditional = False
    scores = ("unconditional",)


class DisyreTrainer_debug(DisyreTrainer):
    """A few steps with frequent validation: for tests and smoke checks."""

    num_steps = 6
    val_every = 3
    num_validation_batches = 1


class DisyreTrainerUnconditional_debug(DisyreTrainer_debug):
    conditional = False
    scores = ("unconditional",)


VARIANTS = [DisyreTrainerFPI, DisyreTrainerUnconditional, DisyreTrainerFPIUnconditional, DisyreTrainer_debug,
            DisyreTrainerUnconditional_debug]
