"""CutPasteTrainer: CutPaste (Li et al., CVPR 2021) with the patch-level localisation of the UPD benchmark
(Lagogiannis et al.; iolag/UPD_study, models/CutPaste), as a DisyreTrainer, so that data, loader, budget
and optimiser are the other methods'.

Training (Sec. 3.1–3.2): per slice a random crop of a quarter of the patch side (UPD: 32 of 128 pixels)
in three views, as is, CutPaste and CutPaste-Scar (training/baselines/cutpaste.py), and the cross-entropy
of the 3-way classification (the paper's Eq. 1 with the 3-way labels); the network is a small ResNet
trained from scratch (training/network/cutpaste_net.py). After the last step, before
checkpoint_final.pth is written, the Gaussian density of the encoder's features of clean training
sub-patches (an eighth of the patch side at a stride of a quarter of that: UPD's 16 at 4 of 128) is
fitted (training/baselines/gaussian_density.py) from ``density_batches`` fixed-seed batches of the
training cases and kept in the network's buffers; ``disyre_v2_predict --score patch_density`` scores
windows with it (inference/patch_density.py).
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F

from disyre_v2.training.augmentation import MaskAndClipTransform
from disyre_v2.training.baselines.cutpaste import CutPasteTransform
from disyre_v2.training.baselines.gaussian_density import GaussianDensityFit, precision_matrix
from disyre_v2.training.data_loader import SliceDataLoader
from disyre_v2.training.data_pipeline import build_batch_generator
from disyre_v2.training.trainer.base import DisyreTrainer

logger = logging.getLogger(__name__)

DENSITY_SEED = 20210620  # the same training sub-patches for the density of every run of a fold


class CutPasteTrainer(DisyreTrainer):
    """3-way CutPaste classification on crops of the training slices; a GDE of sub-patch features after training."""

    conditional = False
    scores = ("patch_density",)
    encoder_widths = (32, 64, 128)
    head_widths = (128, 128)
    embedding_dim = 128
    min_crop = 8
    density_batches = 4  # 4 × 32 slices of 2d_small: about 10⁵ sub-patches holding brain for 128 features

    # -- sizes, from the patch -----------------------------------------------------------------
    @property
    def patch_side(self) -> int:
        return min(int(p) for p in self.configuration["patch_size"])

    def crop_size(self) -> int:
        """Training crops: a quarter of the patch side (UPD: 32 of 128), at least ``min_crop``."""
        return min(max(self.patch_side // 4, self.min_crop), self.patch_side)

    def score_patch_and_stride(self) -> tuple[int, int]:
        """Scored sub-patches: an eighth of the patch side at a quarter of that (UPD: 16 at 4 of 128),
        at least ``min_crop``; stride 1 where the stride does not tile the patch."""
        patch = min(max(self.patch_side // 8, self.min_crop), self.patch_side)
        stride = max(patch // 4, 1)
        if any((int(p) - patch) % stride for p in self.configuration["patch_size"]):
            stride = 1
        return patch, stride

    def network_plans(self) -> dict:
        score_patch, score_stride = self.score_patch_and_stride()
        return {"class_name": "CutPasteNet", "kwargs": {
            "in_channels": int(self.configuration["network"]["kwargs"]["in_channels"]),
            "widths": list(self.encoder_widths), "head_widths": list(self.head_widths),
            "embedding_dim": int(self.embedding_dim), "num_classes": 3,
            "score_patch": score_patch, "score_stride": score_stride}}

    # -- training ------------------------------------------------------------------------------
    def synthesis_transform(self, seed: int) -> CutPasteTransform:
        return CutPasteTransform(self.crop_size(), seed=seed)

    def loss(self, prediction: torch.Tensor, batch: dict) -> torch.Tensor:
        """Cross-entropy of the 3-way classification (normal 0, CutPaste 1, Scar 2), mean over the views."""
        return F.cross_entropy(prediction.float(), batch["target"].long())

    # -- the density, before the final checkpoint ----------------------------------------------
    def save_checkpoint(self, file_name: str) -> Path | None:
        """checkpoint_final.pth holds the fitted density (rank 0 writes it and fits it; the other ranks
        write nothing). checkpoint_latest.pth has none: resuming retrains from it and fits at the end."""
        if file_name == "checkpoint_final.pth" and self.distributed.is_main:
            self.fit_density()
        return super().save_checkpoint(file_name)

    def density_batch_source(self):
        """``density_batches`` batches of clean training slices (masked and clipped, not augmented), drawn
        from a fixed seed: the same for a run and its resumed copy."""
        batch = self.configuration["batch"]
        data_folder = self.preprocessed_dataset_folder / self.configuration["data_identifier"]
        loader = SliceDataLoader(data_folder, self.split()[0], self.configuration["patch_size"], batch["n_volumes"],
                                 batch["n_slices"], seed=DENSITY_SEED, fold=self.fold,
                                 slice_axis=self.configuration.get("slice_axis", 0),
                                 crop_mode=batch.get("crop_mode", "slice_brain_box"))
        return build_batch_generator(loader, [MaskAndClipTransform()], num_workers=0)

    @torch.no_grad()
    def fit_density(self) -> None:
        """GDE (Li et al., Sec. 3.3) of the features of every sub-patch holding brain, with the weights that
        prediction uses (the EMA's where kept), stored in that network's buffers (and the trained one's)."""
        model = self.ema.module if self.ema is not None else self.network
        model.eval()
        patch, stride = int(model.score_patch), int(model.score_stride)
        fit = GaussianDensityFit(model.feature_dim)
        batches = self.density_batch_source()
        for _ in range(self.density_batches):
            batch = next(batches)
            data = torch.as_tensor(batch["data"], dtype=torch.float32, device=self.device)
            brain = torch.as_tensor(batch["mask"], dtype=torch.float32, device=self.device)
            pieces = F.unfold(data, patch, stride=stride).transpose(1, 2).reshape(-1, data.shape[1], patch, patch)
            holds_brain = F.unfold(brain, patch, stride=stride).amax(1).reshape(-1) > 0
            if holds_brain.any():
                with self.autocast():
                    fit.add(model.features(pieces[holds_brain]).float())
        mean, covariance, shrinkage = fit.estimate()
        precision = precision_matrix(covariance)
        for network in {id(m): m for m in (model, self.network)}.values():
            network.set_density(mean.to(self.device), precision.to(self.device), fit.count, shrinkage)
        logger.info("CutPaste density: %d sub-patches of %d px (stride %d), %d features, Ledoit-Wolf shrinkage %.3g.",
                    fit.count, patch, stride, model.feature_dim, shrinkage)
