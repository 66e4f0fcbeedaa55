"""What a checkpoint holds of a run and how a run resumes from it: weights, optimizer, schedules,
EMA, step, progress, random states and, in deterministic runs, the data pipeline's stream."""
from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import numpy as np
import torch

from disyre_v2.training.trainer.checkpoint import check_compatible, load_checkpoint, save_checkpoint

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


def _numpy_global_state() -> str:
    name, keys, position, has_gauss, cached = np.random.get_state()
    return json.dumps([name, keys.tolist(), position, has_gauss, cached])


def _restore_numpy_global_state(text: str) -> None:
    name, keys, position, has_gauss, cached = json.loads(text)
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))
