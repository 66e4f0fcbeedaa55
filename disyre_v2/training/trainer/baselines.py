"""Trainers of the comparison methods (documentation/explanation/comparison.md), each a DisyreTrainer
with its own corruption, network or loss, so that data, loader, budget and optimiser are shared.

- DaeTrainer: denoising autoencoder (Kascenas et al., MIDL 2022): the plans' U-Net without level input
  restores slices from coarse noise; score ``residual`` = |x − P(x)|.
- VaeTrainer: convolutional VAE (UPD benchmark's reconstruction baseline) on clean slices; loss
  MSE + β·KL; score ``residual`` = |x − reconstruction of μ|.
- FpiSegmentationTrainer: Foreign Patch Interpolation (Tan et al.): the U-Net predicts the
  interpolation factor α·m of FPI anomalies, binary cross-entropy; score ``segmentation`` = σ(logit).
"""
from __future__ import annotations

import torch

from disyre_v2.training.baselines.clean_target import CleanTargetTransform
from disyre_v2.training.baselines.coarse_noise import CoarseNoiseTransform
from disyre_v2.training.baselines.interpolation_label import InterpolationLabelTransform
from disyre_v2.training.network.vae import kl_divergence, vae_widths
from disyre_v2.training.trainer.base import DisyreTrainer
from disyre_v2.training.trainer.steps import region_mean


class DaeTrainer(DisyreTrainer):
    """Denoising autoencoder: coarse noise (16 × 16 grid over the 128 mm patch, σ = 0.2) on the brain."""

    conditional = False
    scores = ("residual",)
    noise_resolution = 16
    noise_sigma = 0.2

    def synthesis_transform(self, seed: int) -> CoarseNoiseTransform:
        return CoarseNoiseTransform(self.noise_resolution, self.noise_sigma, seed=seed)

    def loss(self, prediction: torch.Tensor, batch: dict) -> torch.Tensor:
        """mean((P(x + noise) − x)² · brain) over the patch: the paper's L2 on the foreground only."""
        brain = batch["mask"].to(torch.float32)
        return ((prediction.float() - batch["target"]) ** 2 * brain).mean()


class VaeTrainer(DisyreTrainer):
    """Convolutional VAE reconstructing clean slices (UPD: latent 512, loss MSE + 10⁻³ · mean KL)."""

    conditional = False
    scores = ("residual",)
    latent_dim = 512
    kl_weight = 1e-3

    def network_plans(self) -> dict:
        patch = [int(p) for p in self.configuration["patch_size"]]
        return {"class_name": "ConvVAE", "kwargs": {
            "in_channels": int(self.configuration["network"]["kwargs"]["in_channels"]), "patch_size": patch,
            "widths": vae_widths(patch), "latent_dim": int(self.latent_dim)}}

    def synthesis_transform(self, seed: int) -> CleanTargetTransform:
        return CleanTargetTransform()

    def loss(self, prediction, batch: dict) -> torch.Tensor:
        """Training: MSE(x̂, x) + β · mean over samples and latent dimensions of KL(q(z|x) ‖ N(0, I)),
        as UPD's VAE trainer. Validation (eval mode, the decoded mean): the reconstruction error alone."""
        if isinstance(prediction, torch.Tensor):
            return super().loss(prediction, batch)
        reconstruction, mean, log_variance = prediction
        kl = kl_divergence(mean.float(), log_variance.float()).mean()
        return super().loss(reconstruction, batch) + self.kl_weight * kl


class FpiSegmentationTrainer(DisyreTrainer):
    """FPI anomalies (texture only, α ~ U(0, 1)); the U-Net's one output channel is the logit of α·m."""

    synthesis_mode = "fpi"
    conditional = False
    scores = ("segmentation",)
    extra_batch_keys = ("label",)

    def network_plans(self) -> dict:
        plans = super().network_plans()
        plans["kwargs"]["out_channels"] = 1
        return plans

    def target_transforms(self) -> list:
        return [InterpolationLabelTransform()]

    def loss(self, prediction: torch.Tensor, batch: dict) -> torch.Tensor:
        """BCE(σ(logit), α·m) over the patch, or over its brain pixels (``training.loss_region``)."""
        bce = torch.nn.functional.binary_cross_entropy_with_logits(prediction.float(), batch["label"], reduction="none")
        return region_mean(bce, batch.get("mask"), self.loss_region)


BASELINE_TRAINERS = [DaeTrainer, VaeTrainer, FpiSegmentationTrainer]
