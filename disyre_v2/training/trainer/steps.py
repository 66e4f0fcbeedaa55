"""One optimisation step and the validation loss: the forward pass, the loss, autocast on CUDA."""
from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch

# Where the restoration loss is averaged: the whole patch (method_numbers.md ("Network")) or the brain pixels only.
LOSS_REGIONS = ("patch", "brain")


class TrainerSteps:
    """Part of DisyreTrainer: reads its model, network, optimizer, schedulers, EMA, ``conditional``,
    ``loss_region`` and ``grad_clip``."""

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


def region_mean(values: torch.Tensor, brain: torch.Tensor | None, region: str) -> torch.Tensor:
    """Mean of per-pixel loss values (B, C, H, W) over the whole patch (``patch``; the mask is not
    read) or over the brain pixels of the (B, 1, H, W) mask only (``brain``), every channel counted."""
    if region == "patch":
        return values.mean()
    brain = brain.to(torch.float32)
    return (values * brain).sum() / (brain.sum() * values.shape[1]).clamp_min(1.0)
