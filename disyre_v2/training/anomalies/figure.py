"""One anomaly at chosen strengths: the α_text × α_bias grid of the paper's Fig. 1.

Training draws every part of an anomaly at random (:class:`AnomalySynthesizer`). To show what the two
strengths do, :func:`synthesize_with` applies the same equations (1) and (2) with the shape, location,
foreign patch, tissue cluster and sign held fixed and α_text, α_bias given, and :func:`alpha_grid`
repeats it over a grid of values. :func:`draw_fixed_anomaly` makes such a fixed anomaly from a seed
with the training code's own drawing functions.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from disyre_v2.training.anomalies.config import AnomalySynthesisConfig
from disyre_v2.training.anomalies.intensity_bias import apply_bias, quantise, tissue_mask
from disyre_v2.training.anomalies.placement import canvas_window, choose_centre
from disyre_v2.training.anomalies.shapes import ShapeSampler, blur_mask
from disyre_v2.training.anomalies.texture import blend_texture, rescale_to_support

# Centre draws tried before accepting an anomaly that reaches outside the brain: the figure should
# show the whole shape, training accepts any centre.
_CENTRE_TRIES = 50


@dataclass(frozen=True)
class FixedAnomaly:
    """Everything of one anomaly except its strengths."""

    window: tuple[slice, slice]  # the C×C canvas in the patch
    mask: np.ndarray  # (C, C) soft shape m, before zeroing on background
    foreign: np.ndarray | None  # (channels, C, C) foreign patch x_fp (None: no texture)
    clusters: tuple[int, ...] | None  # tissue cluster k per channel (None: bias over the whole mask)
    signs: tuple[float, ...]  # bias sign per channel


def synthesize_with(x: np.ndarray, brain: np.ndarray, anomaly: FixedAnomaly, alpha_text: float,
                    alpha_bias: float, *, rescale: bool = True,
                    centroids: Sequence[Sequence[float]] | None = None, tissue_sigma: float = 1.0) -> np.ndarray:
    """x_sc of the (C, H, W) patch ``x`` for the fixed ``anomaly`` at strengths α_text and α_bias.

    Same steps as training: m is zeroed on background (``brain``, (H, W)); eq. (1) blends the foreign
    patch (rescaled to x's min/max on the support if ``rescale``); eq. (2) adds sign·α_bias·m·m_tissue
    and clips, with m_tissue the indicator of cluster k of x_text (nearest of ``centroids``) smoothed by
    ``tissue_sigma``. α_text = α_bias = 0 returns ``x`` unchanged.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 3:
        raise ValueError(f"synthesize_with: x must be one (C, H, W) patch, got shape {x.shape}")
    if not (0.0 <= alpha_text <= 1.0 and 0.0 <= alpha_bias <= 1.0):
        raise ValueError(f"synthesize_with: strengths must lie in [0, 1], got α_text={alpha_text}, α_bias={alpha_bias}")
    rows, cols = anomaly.window
    m = anomaly.mask * (np.asarray(brain)[rows, cols] > 0)
    support = m > 0
    out = x.copy()
    if not support.any():
        return out
    canvas = x[:, rows, cols]
    x_text = canvas
    if alpha_text > 0:
        if anomaly.foreign is None:
            raise ValueError("synthesize_with: α_text > 0 needs a foreign patch (anomaly.foreign is None)")
        foreign = rescale_to_support(anomaly.foreign, canvas, support) if rescale else anomaly.foreign
        x_text = blend_texture(canvas, foreign, m, alpha_text)  # eq. (1)
    x_sc = x_text.copy()
    if alpha_bias > 0:
        if anomaly.clusters is not None and centroids is None:
            raise ValueError("synthesize_with: a tissue cluster is fixed but no centroids were given")
        whole_text = x.copy()
        whole_text[:, rows, cols] = x_text  # m_tissue is computed on the whole slice, as in training
        for c in range(x.shape[0]):
            tissue: np.ndarray | float = 1.0
            if anomaly.clusters is not None:
                labels = quantise(whole_text[c], np.asarray(centroids[c], dtype=np.float64))
                tissue = tissue_mask(labels, anomaly.clusters[c], tissue_sigma)[rows, cols]
            x_sc[c] = apply_bias(x_text[c], m, tissue, anomaly.signs[c], alpha_bias)  # eq. (2)
    out[:, rows, cols] = x_sc
    return out


def alpha_grid(x: np.ndarray, brain: np.ndarray, anomaly: FixedAnomaly, alpha_text_values: Sequence[float],
               alpha_bias_values: Sequence[float], **kwargs) -> np.ndarray:
    """(len(α_bias), len(α_text), C, H, W): row i, column j is :func:`synthesize_with` at
    α_bias = ``alpha_bias_values[i]``, α_text = ``alpha_text_values[j]``."""
    return np.stack([
        np.stack([synthesize_with(x, brain, anomaly, float(a_text), float(a_bias), **kwargs)
                  for a_text in alpha_text_values])
        for a_bias in alpha_bias_values
    ])


def dominant_clusters(x: np.ndarray, support: np.ndarray, centroids: Sequence[Sequence[float]]) -> tuple[int, ...]:
    """Per channel, the tissue cluster with most pixels of ``x`` (C, S, S) on ``support`` (ties: lower k).

    Training draws k with probability ∝ these counts; the figure takes the likeliest one, so the bias
    falls on the tissue that makes up most of the lesion.
    """
    out = []
    for c, channel_centroids in enumerate(centroids):
        labels = quantise(x[c][support], np.asarray(channel_centroids, dtype=np.float64))
        out.append(int(np.argmax(np.bincount(labels, minlength=len(channel_centroids)))))
    return tuple(out)


def draw_fixed_anomaly(config: AnomalySynthesisConfig, x: np.ndarray, brain: np.ndarray,
                       foreign_source: np.ndarray, foreign_brain: np.ndarray, rng: np.random.Generator,
                       shape_kind: str = "irregular", sign: float = 1.0,
                       blur_sigma: float | None = None) -> FixedAnomaly:
    """A seeded anomaly for patch ``x`` (C, H, W) with brain ``brain`` (H, W).

    The shape is drawn by the training :class:`ShapeSampler` (kind ``shape_kind``) and blurred with
    ``blur_sigma`` (default: the middle of the plans' blur range); its centre is drawn as in training,
    preferring one where the whole shape lies in the brain. The foreign patch is a C×C crop of
    ``foreign_source`` (another healthy slice, (C, H', W')) around its brain; the tissue clusters are
    :func:`dominant_clusters`. Which parts are used follows ``config.mode``.
    """
    spec, size = config.spec, config.canvas_size
    shape, _ = ShapeSampler(config).draw(rng, shape_kind)
    if blur_sigma is None:
        blur_sigma = 0.5 * sum(config.blur_sigma_range)
    mask = blur_mask(shape, blur_sigma)
    brain = np.asarray(brain) > 0
    window = canvas_window(choose_centre(brain, size, rng), size)
    for _ in range(_CENTRE_TRIES):
        if not np.any((mask > 0) & ~brain[window]):
            break
        window = canvas_window(choose_centre(brain, size, rng), size)
    foreign = None
    if spec.texture:
        rows, cols = canvas_window(choose_centre(np.asarray(foreign_brain) > 0, size, rng), size)
        foreign = np.asarray(foreign_source, dtype=np.float32)[:, rows, cols].copy()
    clusters = None
    if spec.bias and spec.tissue:
        support = (mask * brain[window]) > 0
        clusters = dominant_clusters(np.asarray(x)[:, window[0], window[1]], support, config.tissue_centroids)
    return FixedAnomaly(window=window, mask=mask, foreign=foreign, clusters=clusters,
                        signs=(float(sign),) * x.shape[0])
