"""The restoration networks of a model folder as ONNX, for runtimes without PyTorch (optional extra:
``pip install -e ".[onnx]"``).

Each exported network takes ``x`` (batch, channels, height, width) float32 — preprocessed slices or
windows, as ``disyre_v2_predict`` feeds them — and, for conditional models, ``t`` (batch,) int64, the
severity level of each sample; it returns ``x0`` of the shape of ``x``, the restoration. Batch, height
and width are dynamic for the U-Net (height and width divisible by 2^(levels-1), as in PyTorch; the
VAE of the comparison keeps its patch size). The weights are
those ``disyre_v2_predict`` uses (``load_models``: the EMA weights when the checkpoint has them).
The model's metadata (``metadata_props``) names the run, configuration, trainer, step, level input
and the scores that fit it, so one .onnx file describes itself.

One run: ``output`` is that .onnx file. Several runs: ``output`` without its suffix becomes a folder
holding ``fold_F_seed_S.onnx`` per run. The anomaly score (levels, averaging, Gaussian windows,
median filter) stays in ``disyre_v2``: the ONNX file is the network only.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

from disyre_v2.errors import UserError
from disyre_v2.inference.model_loading import RUN_FOLDER, LoadedModel, load_models
# The export itself lives with the predictor's onnxruntime backend (inference must not import
# model_sharing); re-exported here for export_model --onnx and the benchmarks.
from disyre_v2.inference.onnx_backend import OPSET, _require_onnx, export_network  # noqa: F401

logger = logging.getLogger(__name__)



def _run_key(run: str | tuple[str | int, int]) -> tuple[str, int]:
    """``fold_F_seed_S`` or ``(fold, seed)`` → ``(fold, seed)``."""
    if isinstance(run, str):
        match = RUN_FOLDER.match(run)
        if match is None:
            raise UserError(f"{run!r} is not a run name", fix="name runs as fold_F_seed_S, e.g. fold_all_seed_0")
        return match["fold"], int(match["seed"])
    fold, seed = run
    return str(fold), int(seed)


def _metadata(model: LoadedModel, configuration: str, plans: dict) -> dict[str, str]:
    return {"disyre_v2_run": model.run_folder.name, "configuration": configuration,
            "model_folder": model.run_folder.parent.name, "conditional": json.dumps(model.conditional),
            "scores": json.dumps(list(model.scores)), "inputs": "x (batch, channels, height, width) float32" + (
                ", t (batch,) int64 severity level" if model.conditional else ""),
            "output": "x0: the restoration, shape of x",
            "patch_size": json.dumps(plans["configurations"][configuration]["patch_size"])}


def export_onnx(model_folder: Path, configuration: str, runs: Sequence[str | tuple[str | int, int]],
                output: Path, checkpoint: str = "final") -> Path:
    """Export the networks of ``runs`` (``fold_F_seed_S`` names or (fold, seed) pairs) of ``model_folder``,
    from each run's ``checkpoint_<checkpoint>.pth``; returns the .onnx file (one run) or the folder of
    ``fold_F_seed_S.onnx`` files (several runs)."""
    _require_onnx()
    model_folder, output = Path(model_folder), Path(output)
    keys = [_run_key(run) for run in runs]
    if not keys:
        raise UserError("no run to export as ONNX", model_folder, "name at least one fold_F_seed_S run")
    plans = json.loads((model_folder / "plans.json").read_text())
    if configuration not in plans.get("configurations", {}):
        raise UserError(f"configuration {configuration!r} is not in the model's plans", model_folder / "plans.json",
                        f"choose one of {', '.join(plans.get('configurations', {}))}")
    patch = plans["configurations"][configuration]["patch_size"]
    target = output if len(keys) == 1 else output.with_suffix("")
    written = []
    for fold, seed in keys:
        model = load_models(model_folder, configuration, folds=[fold], seeds=[seed], checkpoint=checkpoint)[0]
        in_channels = int(getattr(model.network, "in_channels", 0) or len(plans.get("channels", [])) or 1)
        path = target if len(keys) == 1 else target / f"fold_{fold}_seed_{seed}.onnx"
        export_network(model.network, model.conditional, in_channels, patch, path,
                       _metadata(model, configuration, plans))
        written.append(path)
        logger.info("Wrote %s (ONNX opset %d, %s).", path, OPSET, "inputs x, t" if model.conditional else "input x")
    return target
