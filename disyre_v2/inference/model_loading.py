"""Load trained networks from a model folder (checkpoints read with weights_only=True)."""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from disyre_v2.training.score_names import default_scores
from disyre_v2.training.network.builder import build_network, with_level_input
from disyre_v2.training.trainer.checkpoint import UNSAFE_FIX, IncompatibleCheckpointError, load_checkpoint

logger = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    network: torch.nn.Module
    conditional: bool
    run_folder: Path
    # The anomaly scores that fit the model (its trainer's ``scores``; the first is the default).
    # Checkpoints from before trainers recorded them: the DISYRE scores by the level input.
    scores: tuple[str, ...] = ()

    def __post_init__(self):
        self.scores = tuple(self.scores) or default_scores(self.conditional)


# What prediction reads from a checkpoint.
CHECKPOINT_KEYS = ("network_plans", "conditional", "network", "step")


def _mismatch(error: RuntimeError) -> str:
    """torch's load_state_dict complaint in short, whole words: how many weights are missing, unexpected
    or of another shape."""
    text = str(error)
    counts = {label: len(re.findall(r'"[^"]+"', match.group(1)))
              for label, pattern in (("missing", r"Missing key\(s\) in state_dict: (.*?)(?:\.\s|$)"),
                                     ("unexpected", r"Unexpected key\(s\) in state_dict: (.*?)(?:\.\s|$)"))
              for match in [re.search(pattern, text, re.S)] if match}
    shapes = text.count("size mismatch for")
    parts = [f"{n} {label} weight(s)" for label, n in counts.items() if n] + (
        [f"{shapes} weight(s) of another shape"] if shapes else [])
    return ", ".join(parts) or "another architecture"


RUN_FOLDER = re.compile(r"^fold_(?P<fold>[0-4]|all)_seed_(?P<seed>\d+)$")


def available_runs(model_folder: Path) -> list[tuple[str, int]]:
    """(fold, seed) of every ``fold_F_seed_S`` folder; other folders (a copy named ``..._backup``, say)
    are ignored with a warning."""
    runs = []
    for path in sorted(p for p in model_folder.iterdir() if p.is_dir()) if model_folder.is_dir() else []:
        match = RUN_FOLDER.match(path.name)
        if match is None:
            if path.name.startswith("fold_"):
                logger.warning("Ignoring %s: not a run folder (fold_F_seed_S, F 0..4 or all).", path)
            continue
        runs.append((match["fold"], int(match["seed"])))
    return runs


MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*__[A-Za-z0-9][A-Za-z0-9_\-]*__[A-Za-z0-9][A-Za-z0-9_\-]*$")


def model_name(model_folder: Path | str) -> str:
    """The model's name, ``<Trainer>__<plans>__<configuration>``: the one its manifest.json records where
    the folder is an exported model (unzipped under any name; disyre_v2.model_sharing), else the folder's."""
    folder = Path(model_folder)
    try:
        name = json.loads((folder / "manifest.json").read_text(encoding="utf-8")).get("model_folder")
    except (OSError, ValueError, AttributeError):
        name = None
    return name if isinstance(name, str) and MODEL_NAME.match(name) else folder.name


def _finished(model_folder: Path, runs: list[tuple[str, int]], checkpoint: str, asked: bool) -> list[tuple[str, int]]:
    """The runs that have the checkpoint. A run without it (unfinished, or one that failed) is skipped
    with a warning by default, and is an error when it was asked for by fold or seed."""
    present = [(f, s) for f, s in runs if (model_folder / f"fold_{f}_seed_{s}" / f"checkpoint_{checkpoint}.pth").is_file()]
    absent = [f"fold_{f}_seed_{s}" for f, s in runs if (f, s) not in present]
    if absent and asked:
        raise FileNotFoundError(f"{model_folder}: run(s) {', '.join(absent)} have no checkpoint_{checkpoint}.pth; "
                                f"finish their training (disyre_v2_train ... --c) or leave them out of -f/--seeds.")
    for name in absent:
        logger.warning("Skipping %s: it has no checkpoint_%s.pth (training unfinished or failed).",
                       model_folder / name, checkpoint)
    if not present:
        raise FileNotFoundError(f"{model_folder}: no run has a checkpoint_{checkpoint}.pth; finish a training first "
                                f"(disyre_v2_train), or use -chk latest.")
    return present


def load_models(model_folder: Path | str, configuration: str, folds: Sequence[str | int] | None = None,
                seeds: Sequence[int] | None = None, checkpoint: str = "final",
                device: torch.device | str = "cpu") -> list[LoadedModel]:
    """One network per (fold, seed) found (or requested) in ``model_folder``, in eval mode."""
    model_folder = Path(model_folder)
    if checkpoint not in ("final", "latest"):
        raise ValueError(f"-chk must be 'final' or 'latest', got {checkpoint!r}")
    runs = available_runs(model_folder)
    if not runs:
        raise FileNotFoundError(f"{model_folder} holds no fold_F_seed_S folder: train first (disyre_v2_train).")
    wanted = [(f, s) for f, s in runs
              if (folds is None or f in {str(x) for x in folds}) and (seeds is None or s in set(seeds))]
    if not wanted:
        raise FileNotFoundError(
            f"No run in {model_folder} matches folds {list(folds) if folds else 'any'} and seeds "
            f"{list(seeds) if seeds else 'any'}; available: {', '.join(f'fold {f} seed {s}' for f, s in runs)}.")
    # A fold or seed asked for and not trained is an error: averaging fewer models than asked would
    # pass silently for the ensemble the user meant.
    for flag, asked, found in (("fold", folds, {f for f, _ in wanted}), ("seed", seeds, {str(s) for _, s in wanted})):
        missing = {str(x) for x in asked} - found if asked is not None else set()
        if missing:
            raise FileNotFoundError(f"{model_folder}: no run for {flag}(s) {', '.join(sorted(missing))}; available: "
                                    f"{', '.join(f'fold {f} seed {s}' for f, s in runs)}.")
    wanted = _finished(model_folder, wanted, checkpoint, asked=folds is not None or seeds is not None)
    models = []
    for fold, seed in wanted:
        run = model_folder / f"fold_{fold}_seed_{seed}"
        path = run / f"checkpoint_{checkpoint}.pth"
        state = load_checkpoint(path, map_location=device)
        if state.get("configuration") != configuration:
            raise IncompatibleCheckpointError(
                f"{path} was trained for configuration {state.get('configuration')!r}, not {configuration!r}.")
        lacking = [key for key in CHECKPOINT_KEYS if key not in state]
        if lacking:
            raise IncompatibleCheckpointError(
                f"the checkpoint lacks {', '.join(lacking)}: it is not a disyre_v2 checkpoint, or is from an "
                f"incompatible version", path, UNSAFE_FIX)
        network = build_network(with_level_input(json.loads(state["network_plans"]), bool(state["conditional"])))
        weights = state["network"]
        if state.get("ema"):
            # Prefer the EMA weights: AveragedModel keeps the averaged network under "module.".
            weights = {k[len("module."):]: v for k, v in state["ema"].items() if k.startswith("module.")}
        try:
            network.load_state_dict(weights, strict=True)
        except RuntimeError as error:
            raise IncompatibleCheckpointError(f"the weights do not fit the network of its plans ({_mismatch(error)})",
                                              path, UNSAFE_FIX) from None
        models.append(LoadedModel(network.to(device).eval(), bool(state["conditional"]), run,
                                  tuple(state.get("scores") or ())))
        logger.info("Loaded %s (step %d).", path, state["step"])
    return models
