"""RVaeTrainer: r-VAE (Chen, You, Tezcan, Konukoglu, Medical Image Analysis 2020), the VAE of the
UPD benchmark trained exactly as VaeTrainer (same network, loss MSE + 10⁻³ · mean KL, data and
budget), scored by MAP restoration under the VAE prior (``restoration``,
disyre_v2.inference.latent_restoration) instead of the reconstruction residual. The residual of the
same weights stays available (``--score residual``): the plain VAE's map of the same model."""
from __future__ import annotations

from disyre_v2.training.trainer.baselines import VaeTrainer


class RVaeTrainer(VaeTrainer):
    """VaeTrainer's training; its own score is the r-VAE restoration |x − x_r|."""

    scores = ("restoration", "residual")
