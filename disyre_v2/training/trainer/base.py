"""The DISYRE v2 trainer (method_numbers.md ("Training")): a 2D U-Net P(x_sc, t) learns to restore x0 from slices
corrupted by synthetic anomalies of severity t; loss MSE(P(x_sc, t), x0) over the whole patch.

Small hook methods (initialize, build_data_pipeline, train_step, validation_step, save/load
checkpoint, run) and hyperparameters as attributes, so a variant overrides one thing by name. This
module holds the attributes and the set-up; the hooks come from one module per idea: data.py (cases,
batches, validation set), steps.py (forward, loss, optimisation step), training_state.py (what a
checkpoint holds and resuming from it) and loop.py (the loop, time budget, validation, debug.json).
"""
from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from disyre_v2.errors import UserError
from disyre_v2.training.network.builder import build_network, with_level_input
from disyre_v2.training.schedule import SeverityScheduler
from disyre_v2.training.score_names import LEVEL_SCORES
from disyre_v2.training.trainer.data import TrainerData
from disyre_v2.training.trainer.distributed import DistributedContext
from disyre_v2.training.trainer.loop import TrainingLoop
from disyre_v2.training.trainer.lr_schedule import warmup_cosine_factor
from disyre_v2.training.trainer.progress import ProgressLog
from disyre_v2.training.trainer.steps import LOSS_REGIONS, TrainerSteps
from disyre_v2.training.trainer.training_state import TrainerCheckpoints


class DisyreTrainer(TrainingLoop, TrainerCheckpoints, TrainerSteps, TrainerData):
    """DISYRE v2: DAG anomalies, time-conditioned network."""

    synthesis_mode: str | None = None  # None: the mode of the plans ("dag")
    conditional: bool = True
    # Anomaly scores of disyre_v2_predict that fit this trainer's models; the first is the default.
    scores: tuple[str, ...] = LEVEL_SCORES
    # Batch entries besides data/target/t/mask that the loss reads (moved to the device).
    extra_batch_keys: tuple[str, ...] = ()
    num_steps: int | None = None  # None: the plans' training.num_steps
    val_every: int = 250
    num_validation_batches: int = 2
    log_every: int = 10
    budget_calibration_steps: int = 10

    def __init__(self, plans: dict, configuration: str, fold: int | str, preprocessed_dataset_folder: Path | str,
                 output_folder: Path | str, *, seed: int = 0, device: str = "cpu", num_steps: int | None = None,
                 val_every: int | None = None, deterministic: bool = False, compile: bool = False,
                 time_budget_s: float | None = None, distributed: DistributedContext | None = None):
        if configuration not in plans["configurations"]:
            raise ValueError(f"Configuration {configuration!r} is not in the plans; available: "
                             f"{', '.join(plans['configurations'])}.")
        self.plans = plans
        self.configuration_name = configuration
        self.configuration = plans["configurations"][configuration]
        self.fold = fold
        self.seed = int(seed)
        self.preprocessed_dataset_folder = Path(preprocessed_dataset_folder)
        self.output_folder = Path(output_folder)
        self.device = torch.device(device)
        self.deterministic = deterministic
        self.compile = compile
        self.time_budget_s = time_budget_s
        self.distributed = distributed or DistributedContext()
        training = self.configuration["training"]
        self.num_steps = int(next(n for n in (num_steps, self.num_steps, training["num_steps"]) if n is not None))
        if self.num_steps < 1:
            raise UserError(f"the number of training steps must be at least 1, got {self.num_steps}",
                            fix="pass --steps N >= 1 (or fix training.num_steps in plans.json)")
        self.requested_steps = self.num_steps  # a time budget may end the run earlier, never later
        self.val_every = int(val_every or self.val_every)
        self.lr = float(training["lr"])
        self.betas = tuple(training["betas"])
        self.weight_decay = float(training["weight_decay"])
        self.warmup_steps = min(int(training["warmup_steps"]), max(self.num_steps // 2, 1))
        self.grad_clip = float(training["grad_clip"])
        self.ema_decay = training.get("ema_decay")
        self.loss_region = training.get("loss_region", "patch")
        if self.loss_region not in LOSS_REGIONS:
            raise ValueError(f"plans.json training.loss_region is {self.loss_region!r}; choose one of "
                             f"{', '.join(LOSS_REGIONS)}.")
        self.step = 0
        self.pretrained_weights: dict | None = None  # set by load_pretrained_weights (fine-tuning)
        self.progress = ProgressLog()
        self._first_batch_keys: str | None = None

    # -- identity --------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return type(self).__name__

    def arguments(self) -> dict:
        """What a checkpoint records to tell whether it can be resumed by this run."""
        return {"configuration": self.configuration_name, "fold": str(self.fold), "seed": self.seed,
                "num_steps": self.num_steps, "val_every": self.val_every, "deterministic": self.deterministic}

    # -- set-up ----------------------------------------------------------------------------
    def network_plans(self) -> dict:
        """The network build_network makes for this trainer, as stored in every checkpoint: the plans'
        U-Net (whether it takes the level input is stored apart, as ``conditional``)."""
        return json.loads(json.dumps(self.configuration["network"]))

    def initialize(self) -> None:
        self._seed_everything()
        self.network = build_network(with_level_input(self.network_plans(), self.conditional)).to(self.device)
        self.scheduler = SeverityScheduler.from_dict(self.configuration["schedule"])
        # The fused kernel updates every parameter in one launch on CUDA (no effect on the result
        # beyond float rounding); the CPU keeps the default implementation.
        self.optimizer = torch.optim.AdamW(self.network.parameters(), lr=self.lr, betas=self.betas,
                                           weight_decay=self.weight_decay, fused=self.device.type == "cuda")
        # The schedule reads num_steps at every step, so a time budget that shortens the run
        # (see run) still ends the cosine at 0.
        self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: warmup_cosine_factor(step, self.warmup_steps, self.num_steps))
        self.ema = None
        if self.ema_decay:
            self.ema = torch.optim.swa_utils.AveragedModel(
                self.network, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(float(self.ema_decay)))
        self.model = self.network
        if self.distributed.enabled:
            self.model = DistributedDataParallel(
                self.network, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if self.compile:
            self.model = torch.compile(self.model)
        self.build_data_pipeline()

    def _seed_everything(self) -> None:
        seed = self.seed + 1000 * self.distributed.rank
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
        if self.deterministic:
            torch.use_deterministic_algorithms(True)
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
