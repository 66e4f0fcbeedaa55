"""The DISYRE v2 trainer (METHOD.md §6): a 2D U-Net P(x_sc, t) learns to restore x0 from slices
corrupted by synthetic anomalies of severity t; loss MSE(P(x_sc, t), x0) over the whole patch.

Small hook methods (initialize, build_data_pipeline, train_step, validation_step, save/load
checkpoint, run) and hyperparameters as attributes, so a variant overrides one thing by name.
"""
from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from disyre_v2.dataset.dataset_json import write_json_atomic
from disyre_v2.errors import UserError
from disyre_v2.inference.score_names import LEVEL_SCORES
from disyre_v2.training.anomalies.transform import AnomalySynthesisTransform
from disyre_v2.training.augmentation import MaskAndClipTransform, build_augmentation
from disyre_v2.training.data_loader import SliceDataLoader
from disyre_v2.training.data_pipeline import build_batch_generator
from disyre_v2.training.network.builder import build_network, with_level_input
from disyre_v2.training.schedule import SeverityScheduler
from disyre_v2.training.trainer.checkpoint import check_compatible, load_checkpoint, save_checkpoint
from disyre_v2.training.trainer.distributed import (DistributedContext, all_reduce_max, all_reduce_mean, all_reduce_mean_tensor,
                                                       barrier,
                                                       check_ranks_agree)
from disyre_v2.training.trainer.lr_schedule import warmup_cosine_factor
from disyre_v2.training.trainer.progress import ProgressLog

logger = logging.getLogger(__name__)

class NonFiniteLossError(UserError):
    """The loss became NaN or infinite: training stops, checkpoint_latest.pth stays the last good one."""

    def __init__(self, step: int, value: float, output_folder: Path, which: str = "training loss"):
        super().__init__(
            f"the {which} is {value} at step {step}; checkpoint_latest.pth (if any) is the last good state and "
            f"was left as it was", output_folder,
            "likely causes: NaN or infinite values in the preprocessed arrays (re-run disyre_v2_plan_and_preprocess "
            "with --verify_dataset_integrity --clean), a learning rate too high for this configuration "
            "(training.lr in plans.json), or a bf16 overflow on GPU")


VALIDATION_SEED = 20240710  # the same synthetic validation anomalies for every run
# Where the restoration loss is averaged: the whole patch (METHOD.md §5) or the brain pixels only.
LOSS_REGIONS = ("patch", "brain")


class DisyreTrainer:
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

    def split(self) -> tuple[list[str], list[str]]:
        """Training and validation cases of this fold from splits_final.json ('all': every case, both)."""
        path = self.preprocessed_dataset_folder / "splits_final.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: run disyre_v2_plan_and_preprocess first.")
        try:
            splits = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise UserError(f"splits_final.json is not valid JSON ({error})", path,
                            "fix it, or delete it and re-run disyre_v2_plan_and_preprocess to recreate it") from None
        if str(self.fold) == "all":
            cases = sorted(set(splits[0]["train"]) | set(splits[0]["val"]))
            train, val = cases, cases
        else:
            fold = int(self.fold)
            if not 0 <= fold < len(splits):
                raise ValueError(f"Fold {fold} does not exist: {path} has folds 0..{len(splits) - 1} (or use 'all').")
            train, val = list(splits[fold]["train"]), list(splits[fold]["val"])
        self._check_split_cases(path, set(train) | set(val))
        return train, val

    def _check_split_cases(self, path: Path, cases: set[str]) -> None:
        """Every case of the split must be a training case of the dataset (the fingerprint lists them)."""
        fingerprint = self.preprocessed_dataset_folder / "dataset_fingerprint.json"
        if not fingerprint.is_file():
            return
        unknown = sorted(cases - set(json.loads(fingerprint.read_text())["case_ids"]))
        if unknown:
            raise UserError(f"splits_final.json names case(s) {', '.join(unknown[:5])} that are not training cases "
                            f"of this dataset", path, "fix the file, or delete it and re-run "
                            "disyre_v2_plan_and_preprocess to recreate it from the training cases")

    def synthesis_transform(self, seed: int) -> AnomalySynthesisTransform:
        """The corruption of the clean slices (x0 → x_sc, t), last of the batch transforms."""
        return AnomalySynthesisTransform.from_plans(self.configuration, seed=seed, mode=self.synthesis_mode)

    def target_transforms(self) -> list:
        """Transforms after the corruption that derive what the loss needs (none for a restoration)."""
        return []

    def build_data_pipeline(self) -> None:
        train_cases, val_cases = self.split()
        data_folder = self.preprocessed_dataset_folder / self.configuration["data_identifier"]
        patch = self.configuration["patch_size"]
        batch = self.configuration["batch"]
        self.train_loader = SliceDataLoader(
            data_folder, train_cases, patch, batch["n_volumes"], batch["n_slices"], seed=self.seed, fold=self.fold,
            rank=self.distributed.rank, slice_axis=self.configuration.get("slice_axis", 0),
            crop_mode=batch.get("crop_mode", "slice_brain_box"))
        self.train_synthesis = self.synthesis_transform(self.seed)
        transforms = (build_augmentation(self.configuration["augmentation"], patch) + [self.train_synthesis]
                      + self.target_transforms())
        workers = 0 if self.deterministic else None
        self.train_batches = build_batch_generator(self.train_loader, transforms, workers,
                                                   pin_memory=self.device.type == "cuda")
        self.validation_set = self._fixed_validation_set(data_folder, val_cases)

    def _fixed_validation_set(self, data_folder: Path, cases: list[str]) -> list[dict]:
        """Held-out slices with synthetic anomalies drawn from a fixed seed: comparable across runs."""
        batch = self.configuration["batch"]
        loader = SliceDataLoader(data_folder, cases, self.configuration["patch_size"], batch["n_volumes"],
                                 batch["n_slices"], seed=VALIDATION_SEED, fold=0)
        # Validation slices are not augmented: only masked and clipped, then corrupted.
        transforms = [MaskAndClipTransform(), self.synthesis_transform(VALIDATION_SEED)] + self.target_transforms()
        generator = build_batch_generator(loader, transforms, num_workers=0)
        return [self._to_tensors(next(generator)) for _ in range(self.num_validation_batches)]

    def _to_tensors(self, batch: dict) -> dict:
        """The batch on the training device. On CUDA the arrays are pinned first, so the copies are
        truly asynchronous and overlap with the previous step's kernels."""
        cuda = self.device.type == "cuda"

        def move(array, dtype=None) -> torch.Tensor:
            tensor = torch.as_tensor(array, dtype=dtype)
            if cuda:
                tensor = tensor.pin_memory()
            return tensor.to(self.device, non_blocking=cuda)

        tensors = {"data": move(batch["data"]), "target": move(batch["target"]),
                   "t": move(batch["t"], torch.long), "mask": move(batch["mask"])}
        tensors.update({key: move(batch[key]) for key in self.extra_batch_keys})
        return tensors

    # -- steps -----------------------------------------------------------------------------
    def autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    def forward(self, model: torch.nn.Module, batch: dict) -> torch.Tensor:
        return model(batch["data"], batch["t"] if self.conditional else None)

    def loss(self, prediction: torch.Tensor, batch: dict) -> torch.Tensor:
        """MSE(P(x_sc, t), x0) over the patch, or over its brain pixels (``training.loss_region``)."""
        return region_mean((prediction.float() - batch["target"]) ** 2, batch.get("mask"), self.loss_region)

    def train_step(self, batch: dict) -> torch.Tensor:
        """One optimisation step; returns the loss as a detached tensor on the device (reading it
        would make the host wait for the GPU: ``run`` reads the losses every ``log_every`` steps)."""
        self.model.train()
        with self.autocast():
            prediction = self.forward(self.model, batch)
        loss = self.loss(prediction, batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.network.parameters(), self.grad_clip)
        self.optimizer.step()
        self.lr_scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.network)
        return loss.detach()

    @torch.no_grad()
    def validation_step(self) -> float:
        model = self.ema.module if self.ema is not None else self.network
        model.eval()
        losses = []
        for batch in self.validation_set:
            with self.autocast():
                prediction = self.forward(model, batch)
            losses.append(float(self.loss(prediction, batch)))
        return float(np.mean(losses))

    # -- checkpoints -----------------------------------------------------------------------
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

    # -- the loop --------------------------------------------------------------------------
    def write_run_info(self, finished: bool = False) -> None:
        """debug.json: what ran; rewritten at the end with the steps actually trained (a time budget
        can end a run before ``arguments.num_steps``)."""
        if not self.distributed.is_main:
            return
        batch = self.configuration["batch"]
        per_rank = batch["n_volumes"] * batch["n_slices"]
        info = {"trainer": self.name, "arguments": self.arguments(), "device": str(self.device),
                "world_size": self.distributed.world_size, "batch_per_rank": per_rank,
                "global_batch": per_rank * self.distributed.world_size, "learning_rate": self.lr,
                "parameters": sum(p.numel() for p in self.network.parameters()),
                "torch": torch.__version__}
        if finished:
            info.update(steps_trained=self.step, time_budget_s=self.time_budget_s)
            write_json_atomic(info, self.output_folder / "debug.json")
            return
        self.output_folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(info, self.output_folder / "debug.json")
        self.scheduler.save(self.output_folder)
        logger.info("Global batch %d (%d per rank × %d ranks), learning rate %.3g, %d parameters.",
                    info["global_batch"], per_rank, self.distributed.world_size, self.lr, info["parameters"])

    def run(self) -> Path | None:
        """Train up to ``num_steps``; returns checkpoint_final.pth (on rank 0)."""
        self.write_run_info()
        bar = tqdm(total=self.num_steps, initial=self.step, desc=f"training {self.name}", unit="step",
                   disable=not self.distributed.is_main)
        session_start, session_first_step = time.perf_counter(), self.step
        step_times: list[float] = []
        pending: list[tuple[int, torch.Tensor, float]] = []  # (step, loss on the device, learning rate)
        calibration = (session_start, self.step)  # (time, step) the step time is measured from
        try:
            while self.step < self.num_steps:
                done = self.step - session_first_step
                # Estimate after the first steps, then follow the machine's load every 5× as many.
                if self.time_budget_s and (done == self.budget_calibration_steps
                                           or (done > 0 and done % (5 * self.budget_calibration_steps) == 0)):
                    self._fit_to_time_budget(time.perf_counter() - session_start, calibration, bar)
                    calibration = (time.perf_counter(), self.step)
                started = time.perf_counter()
                batch = next(self.train_batches)
                if self._first_batch_keys is None:
                    self._first_batch_keys = repr(batch.get("keys"))
                pending.append((self.step + 1, self.train_step(self._to_tensors(batch)),
                                self.lr_scheduler.get_last_lr()[0]))
                self.step += 1
                step_times.append(time.perf_counter() - started)
                if self.step - session_first_step == 1:
                    calibration = (time.perf_counter(), self.step)  # start-up is over
                bar.update(1)
                validating = self.step % self.val_every == 0 or self.step == self.num_steps
                if validating or self.step % self.log_every == 0:
                    self._read_losses(pending, step_times, bar)
                if validating:
                    self._validate_and_checkpoint()
        finally:
            bar.close()
            self._stop_workers()
        if self.distributed.enabled:
            check_ranks_agree(self.network, self._first_batch_keys or "", self.distributed, self.device)
        final = self.save_checkpoint("checkpoint_final.pth")
        self.write_run_info(finished=True)
        barrier(self.distributed)
        return final

    def _read_losses(self, pending: list, step_times: list[float], bar) -> None:
        """Read the losses of the last steps in one host-device transfer (and one all-reduce when
        distributed), log them, and stop at the first non-finite one. Called every ``log_every``
        steps and before every validation, so no checkpoint is written after a non-finite loss."""
        if not pending:
            return
        steps = [step for step, _, _ in pending]
        values = torch.stack([loss.float() for _, loss, _ in pending])
        values = all_reduce_mean_tensor(values, self.distributed).cpu().tolist()
        times = step_times[-len(pending):]
        times = [float("nan")] * (len(pending) - len(times)) + times
        for (step, _, learning_rate), loss, step_time in zip(pending, values, times):
            if not math.isfinite(loss):
                pending.clear()
                raise NonFiniteLossError(step, loss, self.output_folder)
            self.progress.log_train(step, loss, learning_rate, step_time)
        pending.clear()
        bar.set_postfix(loss=f"{values[-1]:.4g}")
        logger.debug("step %d loss %.5f", steps[-1], values[-1])

    def _fit_to_time_budget(self, elapsed: float, calibration: tuple[float, int], bar) -> None:
        """Set num_steps so that the run ends within time_budget_s.

        The step time is the wall time since the last calibration point divided by the steps made
        since (the first step, slowed by start-up, is left out); wall time, because on a GPU a step's
        host time is only its launch. Re-estimated every 5 × ``budget_calibration_steps`` steps, so it
        follows the machine's load. Under torchrun every rank uses the slowest rank's figures, so all
        ranks stop, validate and read losses at the same steps.
        """
        since, first = calibration
        per_step = (time.perf_counter() - since) / max(self.step - first, 1)
        per_step, elapsed = all_reduce_max([per_step, elapsed], self.distributed, self.device)
        # Validation and checkpoints cost about one step each per val_every steps.
        per_step *= 1 + 1.0 / max(self.val_every, 1)
        affordable = self.step + int(max(self.time_budget_s - elapsed, 0) / per_step)
        target = max(min(affordable, self.requested_steps), self.step + 1)
        if target != self.num_steps:
            first_fit = self.requested_steps == self.num_steps
            logger.log(logging.INFO if first_fit else logging.DEBUG, "Time budget %.0f s (%.0f s used, %.2f s/step): "
                       "training %d steps.", self.time_budget_s, elapsed, per_step, target)
            self.num_steps = target
            self.val_every = min(self.val_every, max(self.num_steps // 4, 1))
            bar.total = self.num_steps
            bar.refresh()

    def _validate_and_checkpoint(self) -> None:
        val_loss = all_reduce_mean(self.validation_step(), self.distributed, self.device)
        if not math.isfinite(val_loss):
            raise NonFiniteLossError(self.step, val_loss, self.output_folder, "validation loss")
        self.progress.log_validation(self.step, val_loss)
        logger.info("step %d: train loss %.5f, validation loss %.5f, lr %.3g", self.step,
                    self.progress.values["train_loss"][-1], val_loss, self.lr_scheduler.get_last_lr()[0])
        if self.distributed.is_main:
            self.save_checkpoint("checkpoint_latest.pth")
            self.progress.plot(self.output_folder / "progress.png")

    def _stop_workers(self) -> None:
        finish = getattr(self.train_batches, "_finish", None)
        if finish is not None:
            finish()


def region_mean(values: torch.Tensor, brain: torch.Tensor | None, region: str) -> torch.Tensor:
    """Mean of per-pixel loss values (B, C, H, W) over the whole patch (``patch``; the mask is not
    read) or over the brain pixels of the (B, 1, H, W) mask only (``brain``), every channel counted."""
    if region == "patch":
        return values.mean()
    brain = brain.to(torch.float32)
    return (values * brain).sum() / (brain.sum() * values.shape[1]).clamp_min(1.0)


def _numpy_global_state() -> str:
    name, keys, position, has_gauss, cached = np.random.get_state()
    return json.dumps([name, keys.tolist(), position, has_gauss, cached])


def _restore_numpy_global_state(text: str) -> None:
    name, keys, position, has_gauss, cached = json.loads(text)
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))
