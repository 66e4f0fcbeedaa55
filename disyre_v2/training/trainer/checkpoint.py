"""Checkpoints: plain tensors and containers only, so ``torch.load(..., weights_only=True)`` reads
them and nothing pickled is ever executed; written to a temporary name, then renamed."""
from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import torch

from disyre_v2.errors import UserError
from disyre_v2.imageio.atomic import atomic_path

CHECKPOINT_FORMAT_VERSION = 1


class IncompatibleCheckpointError(UserError):
    """A checkpoint from another trainer, plans, configuration or format version, or no checkpoint."""


UNSAFE_FIX = ("re-train the run (disyre_v2_train, or --c from a good checkpoint_latest.pth) or re-export the "
              "checkpoint with this version of disyre_v2")


def _torch_reason(error: Exception) -> str:
    """torch's own words for a failed read, whole; none where they advise loading the file unsafely."""
    lines = str(error).strip().splitlines()
    first = lines[0].strip() if lines else ""
    if not first or "weights_only" in str(error) or len(first) > 160:
        return type(error).__name__ if first else f"{type(error).__name__}: no data"
    return f"{type(error).__name__}: {first}"


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
        # torch warns about old pickle protocols before it fails; the error below says all that matters.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        # Objects other than tensors and plain containers (pickled code, a class of another program), or
        # bytes that are no pickle: torch's message would advise an unsafe load, so it is not repeated.
        raise IncompatibleCheckpointError(
            "the file cannot be read as a disyre_v2 checkpoint: it is not one, or is from an incompatible "
            "version, and cannot be loaded safely (nothing in it was run)", path, UNSAFE_FIX
        ) from None
    except Exception as error:  # empty or truncated files: EOFError, RuntimeError from the zip reader, ...
        raise IncompatibleCheckpointError(
            f"the file cannot be read as a disyre_v2 checkpoint ({_torch_reason(error)}): it is empty, truncated "
            f"or written by another program", path, f"{UNSAFE_FIX}, or restore the file"
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
