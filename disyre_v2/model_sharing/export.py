"""Export a trained model folder to one zip: what prediction needs, nothing else, byte-for-byte reproducible.

The archive's members sit at its root exactly as in a model folder, so unzipping it anywhere gives a
folder that ``disyre_v2_predict -m`` reads:

    plans.json, dataset.json                      copies of the model folder's
    fold_F_seed_S/checkpoint_<final|latest>.pth   weights only (the EMA weights where the run kept them),
                                                  with what load_models reads; no optimizer, schedules,
                                                  random states or training curves
    fold_F_seed_S/progress.png                    the validation curve, where the run drew it (model card)
    calibrations/calibration_<key>.json           the calibrations made with exactly the exported runs
    onnx/...                                      with --onnx: the networks as ONNX
    MODEL.md                                      the model card
    manifest.json                                 format, version, runs, training settings, data, and
                                                  every other member's SHA-256 and size

Reproducible: fixed member timestamps (1980-01-01), permissions (0644) and order (sorted, then the
model card and the manifest), and checkpoints serialised to memory (torch.save's bytes depend only on
the tensors then).
"""
from __future__ import annotations

import io
import json
import logging
import tempfile
import zipfile
from pathlib import Path
from typing import Sequence

import torch

from disyre_v2 import __version__
from disyre_v2.errors import UserError
from disyre_v2.imageio.atomic import atomic_path
from disyre_v2.inference.calibration import CALIBRATION_FOLDER, load_calibration
from disyre_v2.inference.model_loading import CHECKPOINT_KEYS, _finished, available_runs
from disyre_v2.model_sharing.manifest import FORMAT, FORMAT_VERSION, MANIFEST_NAME, MODEL_CARD_NAME, dumps, sha256_bytes
from disyre_v2.model_sharing.model_card import render_model_card
from disyre_v2.training.trainer.checkpoint import (
    CHECKPOINT_FORMAT_VERSION,
    UNSAFE_FIX,
    IncompatibleCheckpointError,
    load_checkpoint,
)

logger = logging.getLogger(__name__)

ZIP_DATE = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o100644  # a regular file, rw-r--r--
# What a shared checkpoint keeps besides the weights: what load_models reads, and the run's identity.
KEPT_KEYS = (*CHECKPOINT_KEYS, "configuration", "scores", "trainer_name", "plans_identifier", "trainer_arguments")
FOLDER_FILES = ("plans.json", "dataset.json")
# Of dataset.json, what the manifest's data description keeps.
DATA_KEYS = ("name", "description", "channel_names", "file_ending", "numTraining", "numTest", "reference",
             "licence", "license", "release")


def reduce_checkpoint(state: dict, path: Path) -> tuple[dict, str]:
    """The checkpoint prediction needs: the network's weights (the EMA's where kept: what load_models
    would use) and the keys it reads. Returns it and which weights were kept ("ema" or "network")."""
    lacking = [key for key in CHECKPOINT_KEYS if key not in state]
    if lacking:
        raise IncompatibleCheckpointError(f"the checkpoint lacks {', '.join(lacking)}: it is not a disyre_v2 "
                                          f"checkpoint, or is from an incompatible version", path, UNSAFE_FIX)
    weights, source = state["network"], "network"
    if state.get("ema"):
        weights = {k[len("module."):]: v for k, v in state["ema"].items() if k.startswith("module.")}
        source = "ema"
    reduced = {key: state[key] for key in KEPT_KEYS if key in state}
    reduced["network"] = {name: tensor.detach().cpu().clone().contiguous() for name, tensor in weights.items()}
    reduced["format_version"] = CHECKPOINT_FORMAT_VERSION
    return {key: reduced[key] for key in sorted(reduced)}, source


def checkpoint_bytes(state: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def select_runs(model_folder: Path, folds: Sequence[str | int] | None, seeds: Sequence[int] | None,
                checkpoint: str) -> list[tuple[str, int]]:
    """The (fold, seed) runs to export: every finished one by default; one asked for and missing is an error."""
    runs = available_runs(model_folder)
    if not runs:
        raise UserError("the model folder holds no trained run (fold_F_seed_S with a checkpoint)", model_folder,
                        "train the model first (disyre_v2_train), or give the right -d/-c/-tr/-p")
    wanted = [(f, s) for f, s in runs
              if (folds is None or f in {str(x) for x in folds}) and (seeds is None or s in set(seeds))]
    for flag, asked, found in (("-f", folds, {f for f, _ in runs}), ("--seeds", seeds, {str(s) for _, s in runs})):
        missing = sorted({str(x) for x in asked} - found) if asked is not None else []
        if missing:
            raise UserError(f"{flag} {' '.join(missing)}: no such run; the model has "
                            f"{', '.join(f'fold_{f}_seed_{s}' for f, s in runs)}", model_folder,
                            f"give {flag} values of trained runs")
    if not wanted:
        raise UserError("no run matches both -f and --seeds", model_folder, "give a fold and seed that were trained")
    try:
        return _finished(model_folder, wanted, checkpoint, asked=folds is not None or seeds is not None)
    except FileNotFoundError as error:
        raise UserError(str(error).rstrip(".")) from None


def matching_calibrations(model_folder: Path, run_names: set[str], checkpoint: str) -> list[Path]:
    """The calibrations whose runs are all exported and whose checkpoint is the exported one."""
    folder = model_folder / CALIBRATION_FOLDER
    kept = []
    for path in sorted(folder.glob("calibration_*.json")) if folder.is_dir() else []:
        try:
            settings = load_calibration(path).settings
        except UserError as error:
            logger.warning("Not exporting %s: %s", path, error.what)
            continue
        if set(settings.get("runs", [])) <= run_names and settings.get("checkpoint") == checkpoint:
            kept.append(path)
        else:
            logger.info("Not exporting %s: made with runs %s or checkpoint %s, not the exported ones.", path,
                        settings.get("runs"), settings.get("checkpoint"))
    return kept


class _Archive:
    """Members written in a fixed order with fixed metadata; the hash and size of each recorded."""

    def __init__(self, handle: zipfile.ZipFile):
        self.handle, self.files = handle, {}

    def add(self, name: str, data: bytes, listed: bool = True) -> None:
        info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.create_system = 3  # Unix, so the permissions below are read as such everywhere
        info.external_attr = FILE_MODE << 16
        self.handle.writestr(info, data, compresslevel=6)
        if listed:
            self.files[name] = {"sha256": sha256_bytes(data), "size": len(data)}


def export_model(model_folder: Path | str, output: Path | str, *, folds: Sequence[str | int] | None = None,
                 seeds: Sequence[int] | None = None, checkpoint: str = "final", onnx: bool = False) -> Path:
    """Write ``output`` (a .zip) from ``model_folder`` (``$DISYRE_results/DatasetNNN_Name/<T>__<P>__<C>``)."""
    model_folder, output = Path(model_folder), Path(output)
    if checkpoint not in ("final", "latest"):
        raise UserError(f"-chk must be final or latest, got {checkpoint!r}", fix="give -chk final or -chk latest")
    if not (model_folder / "plans.json").is_file():
        raise UserError("not a model folder: it has no plans.json", model_folder,
                        "give the dataset and configuration of a trained model (-d, -c, -tr, -p)")
    configuration = model_folder.name.split("__")[-1]
    runs = select_runs(model_folder, folds, seeds, checkpoint)
    run_names = {f"fold_{f}_seed_{s}" for f, s in runs}
    dataset_json = _read_json(model_folder / "dataset.json")
    run_records = []
    with atomic_path(output, ".zip") as tmp, zipfile.ZipFile(tmp, "w") as handle:
        archive = _Archive(handle)
        members: dict[str, Path | None] = {name: model_folder / name for name in FOLDER_FILES
                                           if (model_folder / name).is_file()}
        for path in matching_calibrations(model_folder, run_names, checkpoint):
            members[f"{CALIBRATION_FOLDER}/{path.name}"] = path
        for fold, seed in runs:
            run = f"fold_{fold}_seed_{seed}"
            members[f"{run}/checkpoint_{checkpoint}.pth"] = None  # reduced below
            if (model_folder / run / "progress.png").is_file():
                members[f"{run}/progress.png"] = model_folder / run / "progress.png"
        onnx_files = _onnx_files(model_folder, configuration, runs, checkpoint) if onnx else {}
        for name in sorted({*members, *onnx_files}):
            if name in onnx_files:
                archive.add(name, onnx_files[name])
            elif members[name] is not None:
                archive.add(name, members[name].read_bytes())
            else:
                run = name.split("/")[0]
                path = model_folder / name
                state = load_checkpoint(path)
                if state.get("configuration") != configuration:
                    raise UserError(f"the checkpoint was trained for configuration {state.get('configuration')!r}, "
                                    f"not {configuration!r}", path, "export the model folder it belongs to")
                reduced, weights = reduce_checkpoint(state, path)
                del state
                archive.add(name, checkpoint_bytes(reduced))
                fold, seed = run[len("fold_"):].rsplit("_seed_", 1)
                run_records.append({"run": run, "fold": fold, "seed": int(seed), "step": int(reduced["step"]),
                                    "weights": weights, "trainer": reduced.get("trainer_name"),
                                    "training": _read_json(model_folder / run / "debug.json")})
        manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "disyre_v2_version": __version__,
            "dataset": model_folder.parent.name, "model_folder": model_folder.name,
            "configuration": configuration, "checkpoint": checkpoint, "runs": run_records,
            "data": {key: dataset_json[key] for key in DATA_KEYS if key in (dataset_json or {})},
        }
        card = render_model_card(manifest, has_figure={r["run"]: f"{r['run']}/progress.png" in archive.files
                                                        for r in run_records})
        archive.add(MODEL_CARD_NAME, card.encode("utf-8"))
        manifest["files"] = dict(sorted(archive.files.items()))
        archive.add(MANIFEST_NAME, dumps(manifest), listed=False)
    logger.info("Exported %d run(s) of %s to %s.", len(runs), model_folder, output)
    return output


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _onnx_files(model_folder: Path, configuration: str, runs: list[tuple[str, int]],
                checkpoint: str) -> dict[str, bytes]:
    """The networks of the exported ``checkpoint`` as ONNX, by ``onnx_export.export_onnx`` (imported only
    here: ONNX support is optional); every file it writes goes under ``onnx/`` of the archive."""
    try:
        from disyre_v2.model_sharing.onnx_export import export_onnx
    except ImportError as error:
        raise UserError(f"--onnx is not available in this installation ({error})",
                        fix="leave out --onnx, or install the ONNX extras (pip install onnx)") from None
    with tempfile.TemporaryDirectory() as staging:
        written = Path(export_onnx(model_folder, configuration, runs, Path(staging) / "model.onnx", checkpoint))
        if not written.is_dir():  # one run: one file, named after its run like the several-run files
            fold, seed = runs[0]
            return {f"onnx/fold_{fold}_seed_{seed}.onnx": written.read_bytes()}
        return {f"onnx/{p.relative_to(written).as_posix()}": p.read_bytes()
                for p in sorted(written.rglob("*")) if p.is_file()}
