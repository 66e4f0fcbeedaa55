"""A model folder given by its path (``disyre_v2_predict -m``, the Python API): an installed or unzipped
export, or any ``<Trainer>__<plans>__<configuration>`` folder of ``$DISYRE_results``. No environment
variable is read."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from disyre_v2.errors import UserError
from disyre_v2.model_sharing.manifest import MANIFEST_NAME, MODEL_FOLDER_PATTERN


@dataclass(frozen=True)
class ModelFolder:
    path: Path
    configuration: str
    checkpoint: str  # the exported checkpoint ("final" unless exported with -chk latest)


def open_model_folder(path: Path | str) -> ModelFolder:
    """Check that ``path`` is a model folder with at least one trained run and find its configuration:
    the manifest's, else the folder name's last part, else its first checkpoint's."""
    from disyre_v2.inference.model_loading import available_runs

    folder = Path(path)
    fix = "give the folder of a trained model (an installed or unzipped export, or $DISYRE_results/DatasetNNN_Name/<trainer>__<plans>__<configuration>)"
    if not folder.is_dir():
        raise UserError("-m must be a model folder, but there is no such folder", folder, fix)
    if not (folder / "plans.json").is_file():
        raise UserError("not a model folder: it has no plans.json", folder, fix)
    runs = [f"fold_{f}_seed_{s}" for f, s in available_runs(folder)]
    checkpoints = sorted(p for run in runs for p in (folder / run).glob("checkpoint_*.pth"))
    if not checkpoints:
        raise UserError("the model folder has no checkpoint (no fold_F_seed_S/checkpoint_final.pth)", folder,
                        "train the model (disyre_v2_train), or install the exported zip again")
    manifest = _manifest(folder)
    if isinstance(manifest.get("configuration"), str):
        return ModelFolder(folder, manifest["configuration"], str(manifest.get("checkpoint", "final")))
    if MODEL_FOLDER_PATTERN.match(folder.name):
        return ModelFolder(folder, folder.name.split("__")[-1], "final")
    from disyre_v2.training.trainer.checkpoint import load_checkpoint

    configuration = load_checkpoint(checkpoints[0]).get("configuration")
    if not isinstance(configuration, str):
        raise UserError("the checkpoint names no configuration", checkpoints[0], fix)
    return ModelFolder(folder, configuration, "final")


def _manifest(folder: Path) -> dict:
    try:
        data = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
