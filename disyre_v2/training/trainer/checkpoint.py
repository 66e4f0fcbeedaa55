"""Checkpoints: plain tensors and containers only, so ``torch.load(..., weights_only=True)`` reads
them and nothing pickled is ever executed; written to a temporary name, then renamed."""
from __future__ import annotations

from pathlib import Path

import torch

from disyre_v2.imageio.atomic import atomic_path

CHECKPOINT_FORMAT_VERSION = 1


class IncompatibleCheckpointError(ValueError):
    """A checkpoint from another trainer, plans, configuration or format version."""


def save_checkpoint(state: dict, path: Path | str) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(dict(state, format_version=CHECKPOINT_FORMAT_VERSION), tmp)
    return path


def load_checkpoint(path: Path | str, map_location: str | torch.device = "cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; train first (disyre_v2_train) or check -f/--seed/-tr.")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # unpickling errors come in many types
        raise IncompatibleCheckpointError(
            f"{path} cannot be read as a disyre_v2 checkpoint ({type(error).__name__}: {str(error)[:200]}). "
            f"It may be truncated or written by another program; retrain or restore the file."
        ) from None
    if not isinstance(state, dict) or state.get("format_version") != CHECKPOINT_FORMAT_VERSION:
        found = state.get("format_version") if isinstance(state, dict) else type(state).__name__
        raise IncompatibleCheckpointError(
            f"{path} has checkpoint format {found!r}, this version of disyre_v2 reads format "
            f"{CHECKPOINT_FORMAT_VERSION}. Retrain, or use the disyre_v2 version that wrote it."
        )
    return state


def check_compatible(state: dict, path: Path | str, **expected) -> None:
    """Raise naming every field (trainer, plans, configuration, ...) that differs from ``expected``."""
    differences = [f"{key}: checkpoint {state.get(key)!r}, expected {value!r}"
                   for key, value in expected.items() if state.get(key) != value]
    if differences:
        raise IncompatibleCheckpointError(
            f"{path} does not belong to this run ({'; '.join(differences)}). Use the matching -tr/-c, "
            f"or start a fresh run without --c."
        )
