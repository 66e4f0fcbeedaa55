"""PiiTrainer: Poisson Image Interpolation (Tan et al., MICCAI 2021) on the shared data, budget and optimiser.

FPI's self-supervised task with the foreign patch blended in the gradient domain
(training/baselines/poisson_interpolation.py): the plans' U-Net without level input predicts, per pixel,
the logit of the PII label (α on the blended patch, 0 elsewhere), trained with binary cross-entropy as
FpiSegmentationTrainer; score ``segmentation`` = σ(logit).
"""
from __future__ import annotations

from disyre_v2.training.baselines.poisson_interpolation import PoissonInterpolationTransform
from disyre_v2.training.trainer.baselines import FpiSegmentationTrainer


class PiiTrainer(FpiSegmentationTrainer):
    """PII anomalies (square patch of 10-40 % of the slice side, α ~ U(0.05, 0.95), Poisson blend);
    the U-Net's one output channel is the logit of the PII label. Network and loss as FPI's."""

    synthesis_mode = None  # the plans' anomaly synthesis is not used: PII makes its own corruption
    alpha_range: tuple[float, float] = (0.05, 0.95)
    core_fraction: float = 0.8
    half_width_fraction: tuple[float, float] = (0.05, 0.2)

    def synthesis_transform(self, seed: int) -> PoissonInterpolationTransform:
        return PoissonInterpolationTransform(self.alpha_range, self.core_fraction, self.half_width_fraction, seed=seed)

    def target_transforms(self) -> list:
        return []  # the PII transform writes the label itself
