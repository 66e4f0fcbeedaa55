"""The training loop: steps until ``num_steps`` (or a time budget), losses read in batches and
stopped at the first non-finite one, validation and checkpoints, and debug.json."""
from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import torch
from tqdm import tqdm

from disyre_v2.dataset.dataset_json import write_json_atomic
from disyre_v2.errors import UserError
from disyre_v2.training.trainer.distributed import (all_reduce_max, all_reduce_mean, all_reduce_mean_tensor, barrier,
                                                    check_ranks_agree)

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


class TrainingLoop:
    """Part of DisyreTrainer: drives its steps (TrainerSteps), batches (TrainerData) and checkpoints
    (TrainerCheckpoints)."""

    def write_run_info(self, finished: bool = False, session: tuple[int, float] | None = None) -> None:
        """debug.json: what ran; rewritten at the end with the steps actually trained (a time budget
        can end a run before ``arguments.num_steps``) and ``session`` = (steps, wall seconds) of this
        process's training, from its first step to the final checkpoint (a resumed run: since --c)."""
        if not self.distributed.is_main:
            return
        batch = self.configuration["batch"]
        per_rank = batch["n_volumes"] * batch["n_slices"]
        info = {"trainer": self.name, "arguments": self.arguments(), "device": str(self.device),
                "world_size": self.distributed.world_size, "batch_per_rank": per_rank,
                "global_batch": per_rank * self.distributed.world_size, "learning_rate": self.lr,
                "parameters": sum(p.numel() for p in self.network.parameters()),
                "torch": torch.__version__,
                # CPU float sums depend on the thread count: a rerun meant to give the same model uses the same
                "torch_threads": torch.get_num_threads()}
        if self.pretrained_weights is not None:  # fine-tuning: the checkpoint it started from
            info["pretrained_weights"] = self.pretrained_weights
        if finished:
            info.update(steps_trained=self.step, time_budget_s=self.time_budget_s)
            if session is not None:
                info.update(session_steps=session[0], session_wall_s=round(session[1], 3))
            write_json_atomic(info, self.output_folder / "debug.json")
            return
        self.output_folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(info, self.output_folder / "debug.json")
        self.scheduler.save(self.output_folder)
        logger.info("Global batch %d (%d per rank × %d ranks), learning rate %.3g, %d parameters.",
                    info["global_batch"], per_rank, self.distributed.world_size, self.lr, info["parameters"])
        if self.pretrained_weights is not None and self.step == 0:
            record = self.pretrained_weights
            logger.info("Fine-tuning from %s (its %s weights, step %d of %s), SHA-256 %s; new optimiser and "
                        "learning-rate schedule.", record["path"], record["weights"], record["step"], record["trainer"],
                        record["sha256"])

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
        self.write_run_info(finished=True, session=(self.step - session_first_step,
                                                    time.perf_counter() - session_start))
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
