"""CutPasteNet: the classifier of CutPaste (Li et al., CVPR 2021) for our patches, trained from scratch,
with its Gaussian density estimator (GDE) kept as buffers.

Encoder: a small ResNet (a 3 × 3 stem, one basic residual block per width, the first at full resolution
and each further one halving it, global average pooling): the paper's and UPD's encoder is ResNet-18 on
ImageNet weights, which cannot be downloaded here, and a from-scratch ResNet-18 is sized for 224-pixel
photographs, not 8–16-pixel patches. Projection head as theirs: (Linear without bias, BatchNorm, ReLU)
per hidden width, then a Linear to the embedding and a Linear to the 3 classes (normal, CutPaste,
CutPaste-Scar). The density is fitted on the encoder's pooled features (as UPD, whose network returns
them next to the logits), after training (``CutPasteTrainer``); its mean, precision Σ⁻¹ and sample
count are persistent buffers, so a checkpoint stays plain tensors and holds the whole model.

``score_patch`` and ``score_stride`` say how ``disyre_v2_predict --score patch_density`` cuts a window
into the sub-patches it scores (inference/patch_density.py): part of the model, so they travel with it.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from disyre_v2.training.baselines.gaussian_density import mahalanobis


class BasicBlock(nn.Module):
    """ResNet's basic block: conv-BN-ReLU-conv-BN plus the (projected) input, then ReLU."""

    def __init__(self, channels_in: int, channels_out: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels_in, channels_out, 3, stride, 1, bias=False), nn.BatchNorm2d(channels_out),
            nn.ReLU(inplace=True), nn.Conv2d(channels_out, channels_out, 3, 1, 1, bias=False),
            nn.BatchNorm2d(channels_out))
        self.shortcut = nn.Identity()
        if stride != 1 or channels_in != channels_out:
            self.shortcut = nn.Sequential(nn.Conv2d(channels_in, channels_out, 1, stride, bias=False),
                                          nn.BatchNorm2d(channels_out))
        self.activation = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.body(x) + self.shortcut(x))


class CutPasteNet(nn.Module):
    def __init__(self, in_channels: int, widths: Sequence[int] = (32, 64, 128), head_widths: Sequence[int] = (128, 128),
                 embedding_dim: int = 128, num_classes: int = 3, score_patch: int = 8, score_stride: int = 2):
        super().__init__()
        widths, head_widths = [int(w) for w in widths], [int(w) for w in head_widths]
        if not widths or num_classes < 2 or embedding_dim < 1:
            raise ValueError(f"CutPasteNet needs at least one width, 2+ classes and an embedding, got {widths}, "
                             f"{num_classes}, {embedding_dim}")
        if not 1 <= score_stride <= score_patch:
            raise ValueError(f"CutPasteNet: score_stride must be in 1..score_patch, got {score_stride}, {score_patch}")
        self.in_channels, self.score_patch, self.score_stride = int(in_channels), int(score_patch), int(score_stride)
        stem = [nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)]
        blocks, channels = [], widths[0]
        for index, width in enumerate(widths):
            blocks.append(BasicBlock(channels, width, 1 if index == 0 else 2))
            channels = width
        self.encoder = nn.Sequential(*stem, *blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.feature_dim = channels
        head: list[nn.Module] = []
        for width in head_widths:
            head += [nn.Linear(channels, width, bias=False), nn.BatchNorm1d(width), nn.ReLU(inplace=True)]
            channels = width
        self.head = nn.Sequential(*head, nn.Linear(channels, embedding_dim))
        self.classifier = nn.Linear(embedding_dim, num_classes)
        # The GDE of the features of normal patches (Li et al., Sec. 3.3), filled after training.
        self.register_buffer("gde_mean", torch.zeros(self.feature_dim))
        self.register_buffer("gde_precision", torch.eye(self.feature_dim))
        self.register_buffer("gde_count", torch.zeros((), dtype=torch.long))
        self.register_buffer("gde_shrinkage", torch.zeros(()))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's pooled features f(x), (N, feature_dim)."""
        return self.encoder(x)

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        """Class logits (normal, CutPaste, Scar). ``t`` is accepted and ignored (the trainer calls P(x, t))."""
        return self.classifier(self.head(self.features(x)))

    @property
    def density_fitted(self) -> bool:
        return int(self.gde_count) > 0

    @torch.no_grad()
    def set_density(self, mean: torch.Tensor, precision: torch.Tensor, count: int, shrinkage: float) -> None:
        self.gde_mean.copy_(mean)
        self.gde_precision.copy_(precision)
        self.gde_count.fill_(int(count))
        self.gde_shrinkage.fill_(float(shrinkage))

    def density_distance(self, features: torch.Tensor) -> torch.Tensor:
        """Mahalanobis distance of features (N, D) under the fitted GDE: the anomaly score."""
        if not self.density_fitted:
            raise ValueError("the CutPaste network's Gaussian density is not fitted: training fits it before "
                             "checkpoint_final.pth is written (checkpoint_latest.pth has none); use -chk final")
        return mahalanobis(features, self.gde_mean, self.gde_precision)
