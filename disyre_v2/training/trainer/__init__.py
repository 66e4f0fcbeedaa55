"""Trainers: the base DISYRE trainer, its variants by name, checkpoints and progress logging."""
from disyre_v2.training.trainer.registry import get_trainer_class, trainer_names

__all__ = ["get_trainer_class", "trainer_names"]
