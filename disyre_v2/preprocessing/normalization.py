"""Intensity normalisation of method_numbers.md ("Intensities").

Per volume and channel: x' = clip(max(x, 0) / p, lo, hi), with p the ``percentile`` (98) of the
(clipped) intensities over the ``domain`` ("brain": brain-mask voxels; "all": every voxel of the
uncropped volume, as the reference implementation does) and [lo, hi] = ``clip`` ([0, 1]).
Background (outside the brain mask) is set to exactly 0.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

# The voxels the percentile p is taken over (see above); plans.json names one as normalization.domain.
NORMALIZATION_DOMAINS = ("brain", "all")


class NormalizationError(ValueError):
    """The normalisation cannot be computed for a channel (the message names the file)."""


def check_normalization(normalization: dict) -> None:
    """Refuse malformed normalisation settings (e.g. from a hand-edited plans.json)."""
    for key in ("percentile", "domain", "clip"):
        if key not in normalization:
            raise NormalizationError(f"The normalization settings lack {key!r}: {normalization}.")
    if not 0 < float(normalization["percentile"]) <= 100:
        raise NormalizationError(f"normalization.percentile must lie in (0, 100], got {normalization['percentile']}.")
    if normalization["domain"] not in NORMALIZATION_DOMAINS:
        raise NormalizationError(
            f"normalization.domain must be one of {NORMALIZATION_DOMAINS}, got {normalization['domain']!r}."
        )
    lo, hi = normalization["clip"]
    if not lo < hi:
        raise NormalizationError(f"normalization.clip must be [low, high] with low < high, got {normalization['clip']}.")


def normalization_scales(data: np.ndarray, mask: np.ndarray, normalization: dict,
                         channel_paths: Sequence[Path | str] | None = None) -> list[float]:
    """The divisor p of each channel of (C, Z, Y, X) ``data``; pass the uncropped volume."""
    check_normalization(normalization)
    scales = []
    for c, channel in enumerate(data):
        values = channel[mask] if normalization["domain"] == "brain" else channel.ravel()
        scale = float(np.percentile(np.maximum(values, 0.0), float(normalization["percentile"])))
        if not scale > 0:
            where = channel_paths[c] if channel_paths is not None else f"channel {c}"
            raise NormalizationError(
                f"{where}: the {normalization['percentile']}th percentile of the {normalization['domain']} "
                f"voxels is {scale:g}, so the channel cannot be normalised. The channel is (almost) blank "
                f"inside the brain mask: check the image and the mask."
            )
        scales.append(scale)
    return scales


def apply_normalization(data: np.ndarray, mask: np.ndarray, scales: Sequence[float], clip: Sequence[float]) -> np.ndarray:
    """clip(max(x, 0) / p_c, lo, hi) per channel, exactly 0 outside ``mask``; float32."""
    if len(scales) != data.shape[0]:
        raise ValueError(f"{len(scales)} scale(s) for {data.shape[0]} channel(s)")
    lo, hi = (float(v) for v in clip)
    out = np.empty(data.shape, dtype=np.float32)
    for c, (channel, scale) in enumerate(zip(data, scales)):
        out[c] = np.clip(np.maximum(channel, 0.0) / np.float32(scale), lo, hi)
    out *= mask[None]
    return out
