"""Mood22Trainer: the MOOD 2022 winning entry (Naval Marimont and Tarroni, 2023) on the shared data,
budget and optimiser, in 2D as the DISYRE paper's Table 1 ran it on slices.

The entry's self-supervised task: foreign-patch anomalies with complex random shapes and smoothed
edges (training/baselines/mood22_anomalies.py); a segmentation U-Net predicts, per pixel, the logit
of the soft label L = G_k ∗ (α·m), trained with binary cross-entropy (the entry's
``BCEWithLogitsLoss``, mean over all voxels); score ``segmentation`` = σ(logit).
"""
from __future__ import annotations

from disyre_v2.training.baselines.mood22_anomalies import Mood22AnomalyTransform, Mood22Parameters
from disyre_v2.training.trainer.baselines import FpiSegmentationTrainer


class Mood22Trainer(FpiSegmentationTrainer):
    """MOOD22 anomalies (rectangles, discs and random shapes on a 0.8·P canvas, α ~ U(0.3, 1), edges
    smoothed with k ∈ {1, 1, 1, 1, 3, 3, 5, 7}, p = 0.9); the plans' U-Net with one output channel,
    BCE on the soft label over the patch (``training.loss_region``), as FpiSegmentationTrainer."""

    synthesis_mode = None  # the plans' anomaly synthesis is not used: the entry makes its own anomalies
    parameters = Mood22Parameters()

    def synthesis_transform(self, seed: int) -> Mood22AnomalyTransform:
        return Mood22AnomalyTransform(self.parameters, seed=seed)

    def target_transforms(self) -> list:
        return []  # the MOOD22 transform writes the label itself
