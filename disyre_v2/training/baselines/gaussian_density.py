"""The Gaussian density estimator (GDE) of CutPaste (Li et al., CVPR 2021, Sec. 3.3):
log p(x) ∝ −½ (f(x) − μ)ᵀ Σ⁻¹ (f(x) − μ), μ and Σ the mean and covariance of the features f of normal
data, Σ estimated with Ledoit–Wolf shrinkage towards a multiple of the identity (Ledoit & Wolf 2004: the
estimator of the CutPaste reimplementations, sklearn's LedoitWolf), so it stays invertible with fewer
samples than dimensions. The anomaly score is the Mahalanobis distance √((f − μ)ᵀ Σ⁻¹ (f − μ)).

The fit streams over batches and keeps float64 sums (Σ x, Σ x xᵀ, Σ ‖x‖² x, Σ ‖x‖⁴), from which the
mean, the covariance and Ledoit–Wolf's fourth-moment term of the centred features follow exactly, so any
number of features fits in memory.
"""
from __future__ import annotations

import torch


class GaussianDensityFit:
    """Streaming fit: ``add`` batches of features (N, D), then ``estimate``."""

    def __init__(self, dimensions: int):
        self.count = 0
        self.total = torch.zeros(dimensions, dtype=torch.float64)           # Σ x
        self.products = torch.zeros(dimensions, dimensions, dtype=torch.float64)  # Σ x xᵀ
        self.norm_weighted = torch.zeros(dimensions, dtype=torch.float64)   # Σ ‖x‖² x
        self.fourth = torch.zeros((), dtype=torch.float64)                  # Σ ‖x‖⁴

    def add(self, features: torch.Tensor) -> None:
        x = features.detach().to("cpu", torch.float64).reshape(len(features), -1)
        norms = (x * x).sum(1)
        self.count += len(x)
        self.total += x.sum(0)
        self.products += x.T @ x
        self.norm_weighted += norms @ x
        self.fourth += (norms * norms).sum()

    def estimate(self) -> tuple[torch.Tensor, torch.Tensor, float]:
        """(μ, Σ, δ): Σ = (1 − δ) S + δ m I, S = (1/n) Σ_k c_k c_kᵀ (c_k = x_k − μ, the maximum-likelihood
        covariance), m = tr(S)/D and δ = min(β, γ)/γ with γ = ‖S − m I‖²_F / D and
        β = (Σ_k ‖c_k‖⁴ / n − ‖S‖²_F) / (n D): Ledoit–Wolf's shrinkage, as sklearn's ledoit_wolf."""
        if self.count < 2:
            raise ValueError(f"the Gaussian density needs at least 2 feature vectors, got {self.count}")
        n, d = self.count, len(self.total)
        mean = self.total / n
        covariance = self.products / n - torch.outer(mean, mean)
        identity = torch.eye(d, dtype=torch.float64)
        # Σ_k ‖c_k‖⁴ with a_k = ‖x_k‖², b_k = x_kᵀμ: Σ (a_k − 2 b_k + ‖μ‖²)², expanded into the kept sums.
        mu2 = mean @ mean
        sum_a = torch.trace(self.products)
        sum_b, sum_b2 = mean @ self.total, mean @ self.products @ mean
        centred_fourth = (self.fourth - 4 * (mean @ self.norm_weighted) + 2 * mu2 * sum_a + 4 * sum_b2
                          - 4 * mu2 * sum_b + n * mu2 * mu2)
        scale = torch.trace(covariance) / d
        gamma = ((covariance - scale * identity) ** 2).sum() / d
        beta = (centred_fourth / n - (covariance ** 2).sum()) / (n * d)
        shrinkage = 0.0 if gamma <= 0 else float(torch.clamp(torch.minimum(beta, gamma) / gamma, 0.0, 1.0))
        return mean, (1 - shrinkage) * covariance + shrinkage * scale * identity, shrinkage


def precision_matrix(covariance: torch.Tensor) -> torch.Tensor:
    """Σ⁻¹ (float64, symmetrised); a singular Σ (all features equal: no shrinkage can help) gets the
    pseudo-inverse."""
    covariance = covariance.to(torch.float64)
    try:
        inverse = torch.linalg.inv(covariance)
    except RuntimeError:  # torch.linalg.LinAlgError
        inverse = torch.linalg.pinv(covariance, hermitian=True)
    return (inverse + inverse.T) / 2


def mahalanobis(features: torch.Tensor, mean: torch.Tensor, precision: torch.Tensor) -> torch.Tensor:
    """√((f − μ)ᵀ Σ⁻¹ (f − μ)) of every row of ``features`` (N, D), in float32 (negative rounding → 0)."""
    centred = features.float() - mean.float()
    squared = ((centred @ precision.float()) * centred).sum(-1)
    return squared.clamp_min(0.0).sqrt()
