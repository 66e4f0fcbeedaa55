"""What a checkpoint holds of a run and how a run resumes from it: weights, optimizer, schedules,
EMA, step, progress, random states and, in deterministic runs, the data pipeline's stream; and how a
fine-tuning run starts from another model's weights (--pretrained_weights)."""
from __future__ import annotations

import hashlib
import json
import logging
import random
from pathlib import Path

import numpy as np
import torch

from disyre_v2.errors import UserError
from disyre_v2.training.trainer.checkpoint import (IncompatibleCheckpointError, check_compatible, load_checkpoint,
                                                   save_checkpoint)

logger = logging.getLogger(__name__)


class TrainerCheckpoints:
    """Part of DisyreTrainer: reads the state ``initialize`` built and the run's identity
    (``name``, ``arguments``, ``network_plans``)."""

    def checkpoint_state(self) -> dict:
        state = {
            "network": self.network.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "lr_scheduler": self.lr_scheduler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "step": self.step,
            "trainer_name": self.name,
            "trainer_arguments": self.arguments(),
            "plans_identifier": self.plans.get("plans_name", "DisyrePlans"),
            "configuration": self.configuration_name,
            "network_plans": json.dumps(self.network_plans(), sort_keys=True),
            "conditional": self.conditional,
            "scores": list(self.scores),
            "progress": self.progress.state_dict(),
            # A fine-tuning run names the checkpoint it started from (path, SHA-256, ...); None otherwise.
            "pretrained_weights": getattr(self, "pretrained_weights", None),
            "rng": {"torch": torch.get_rng_state(), "numpy": _numpy_global_state(), "python": json.dumps(random.getstate())},
        }
        if self.deterministic:
            # In-process data pipeline: its stream and the corruption's own state (the anomaly
            # synthesis' foreign-patch cache; a corruption without one has no state_dict) resume exactly.
            state["data_pipeline"] = {
                "loader_rng": json.dumps(self.train_loader.rng.bit_generator.state),
                "synthesis": self.train_synthesis.state_dict() if hasattr(self.train_synthesis, "state_dict") else {},
            }
        return state

    def save_checkpoint(self, file_name: str) -> Path | None:
        if not self.distributed.is_main:
            return None
        return save_checkpoint(self.checkpoint_state(), self.output_folder / file_name)

    def load_checkpoint(self, path: Path | str) -> None:
        state = load_checkpoint(path, map_location=self.device)
        check_compatible(state, path, trainer_name=self.name, configuration=self.configuration_name,
                         plans_identifier=self.plans.get("plans_name", "DisyrePlans"),
                         network_plans=json.dumps(self.network_plans(), sort_keys=True))
        self.network.load_state_dict(state["network"])
        self.optimizer.load_state_dict(state["optimizer"])
        for group in self.optimizer.param_groups:  # the saved run may have used another device
            group["fused"] = self.device.type == "cuda"
        self.lr_scheduler.load_state_dict(state["lr_scheduler"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        self.step = int(state["step"])
        self.pretrained_weights = state.get("pretrained_weights")  # debug.json keeps naming it after --c
        self.progress.load_state_dict(state["progress"])
        torch.set_rng_state(state["rng"]["torch"].cpu())
        _restore_numpy_global_state(state["rng"]["numpy"])
        version, internal, gauss = json.loads(state["rng"]["python"])
        random.setstate((version, tuple(internal), gauss))
        if "data_pipeline" in state and self.deterministic:
            self.train_loader.rng.bit_generator.state = json.loads(state["data_pipeline"]["loader_rng"])
            if hasattr(self.train_synthesis, "load_state_dict"):
                self.train_synthesis.load_state_dict(state["data_pipeline"]["synthesis"])
        logger.info("Resumed from %s at step %d.", path, self.step)

    def load_pretrained_weights(self, path: Path | str) -> dict:
        """Fine-tuning: start this new run from the weights of another model's checkpoint.

        The weights are the ones ``disyre_v2_predict`` uses (``load_models``): the EMA weights when the
        checkpoint has them, else the network's. Only the weights are taken: the optimiser, the
        learning-rate schedule, the EMA (restarted from these weights) and the step (0) are this run's
        own. The checkpoint's network plans and level input (``conditional``) must equal this run's;
        otherwise the difference is named. Returns what debug.json records."""
        path = Path(path)
        if not path.is_file():
            raise UserError("the checkpoint given as --pretrained_weights does not exist", path,
                            "pass a checkpoint_final.pth (or checkpoint_latest.pth) of a trained model")
        state = load_checkpoint(path, map_location=self.device)
        lacking = [key for key in ("network", "network_plans", "conditional") if key not in state]
        if lacking:
            raise IncompatibleCheckpointError(f"the checkpoint lacks {', '.join(lacking)}: it is not a disyre_v2 "
                                              f"model checkpoint", path, "pass a checkpoint_final.pth of disyre_v2_train")
        differences = network_differences(json.loads(state["network_plans"]), self.network_plans())
        if bool(state["conditional"]) != bool(self.conditional):
            differences.append(f"conditional (level input t): checkpoint {bool(state['conditional'])}, "
                               f"this run {bool(self.conditional)}")
        if differences:
            raise IncompatibleCheckpointError(
                f"the pretrained weights do not fit this run's network ({'; '.join(differences)})", path,
                f"fine-tune with the configuration and trainer the checkpoint was trained with "
                f"({state.get('configuration')!r}, {state.get('trainer_name')!r}), or with plans of the same network")
        weights, which = ema_or_network_weights(state)
        self.network.load_state_dict(weights, strict=True)  # in place: the optimiser keeps its parameters
        if self.ema is not None:
            self.ema.module.load_state_dict(weights, strict=True)
        self.pretrained_weights = {
            "path": str(path.resolve()), "sha256": file_sha256(path), "weights": which,
            "trainer": state.get("trainer_name"), "configuration": state.get("configuration"),
            "plans_identifier": state.get("plans_identifier"), "step": int(state.get("step", 0))}
        return self.pretrained_weights


def ema_or_network_weights(state: dict) -> tuple[dict, str]:
    """The weights prediction uses: EMA ones when the checkpoint has them (AveragedModel keeps the
    averaged network under ``module.``), else the network's; and which ("ema" or "network")."""
    if state.get("ema"):
        return {k[len("module."):]: v for k, v in state["ema"].items() if k.startswith("module.")}, "ema"
    return state["network"], "network"


def network_differences(checkpoint: object, this_run: object, prefix: str = "") -> list[str]:
    """Every entry where two network plans differ, as ``kwargs.widths: checkpoint [8, 16], this run [16, 32]``."""
    if isinstance(checkpoint, dict) and isinstance(this_run, dict):
        differences = []
        for key in list(checkpoint) + [k for k in this_run if k not in checkpoint]:
            name = f"{prefix}.{key}" if prefix else str(key)
            if key not in this_run:
                differences.append(f"{name}: checkpoint {checkpoint[key]!r}, absent in this run")
            elif key not in checkpoint:
                differences.append(f"{name}: absent in the checkpoint, this run {this_run[key]!r}")
            else:
                differences += network_differences(checkpoint[key], this_run[key], name)
        return differences
    if checkpoint != this_run:
        return [f"{prefix or 'network'}: checkpoint {checkpoint!r}, this run {this_run!r}"]
    return []


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _numpy_global_state() -> str:
    name, keys, position, has_gauss, cached = np.random.get_state()
    return json.dumps([name, keys.tolist(), position, has_gauss, cached])


def _restore_numpy_global_state(text: str) -> None:
    name, keys, position, has_gauss, cached = json.loads(text)
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))
