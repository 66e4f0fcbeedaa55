"""Turn a dataset fingerprint into plans.json: one entry per configuration (`2d`, `2d_small`).

Each configuration starts from its defaults (planning/defaults.py, the numbers of documentation/explanation/method_numbers.md) and is
fitted to the data: target spacing, a patch no larger than the median slice (rounded down to a
multiple of 2^depth), synthesis sizes scaled with P/128, and the fitted tissue centroids.
"""
from __future__ import annotations

import copy
import logging
from typing import Sequence

import numpy as np

from disyre_v2 import __version__
from disyre_v2.planning import defaults as D
from disyre_v2.planning.plans import PlansError
from disyre_v2.preprocessing.resampling import SPACING_RTOL, spacing_differs

logger = logging.getLogger(__name__)


def target_spacing(median_spacing: Sequence[float], min_spacing_mm: float | None) -> list[float]:
    """The data's own spacing, or ``min_spacing_mm`` on every axis finer than it (xyz, mm)."""
    if min_spacing_mm is None:
        return [float(s) for s in median_spacing]
    return [float(max(s, min_spacing_mm)) for s in median_spacing]


def _round_half_up(value: float) -> int:
    return int(np.floor(value + 0.5))


def scaled_anomaly_synthesis(patch: int) -> dict:
    """method_numbers.md ("Anomaly synthesis") parameters for patch side P: canvas P/2, pixel sizes scaled by P/128."""
    scale = patch / D.REFERENCE_PATCH
    canvas = max(1, int(patch * D.CANVAS_FRACTION))
    size_lo = max(1, _round_half_up(D.SHAPE_SIZE_RANGE_AT_128[0] * scale))
    size_hi = min(canvas, max(size_lo, _round_half_up(D.SHAPE_SIZE_RANGE_AT_128[1] * scale)))
    return {
        "mode": D.ANOMALY_MODE,
        "canvas_size": canvas,
        "shape_probabilities": dict(D.SHAPE_PROBABILITIES),
        "shape_size_range": [size_lo, size_hi],
        "irregular_rotation_deg": D.IRREGULAR_ROTATION_DEG,
        "irregular_extent_range": [v * scale for v in D.IRREGULAR_EXTENT_RANGE_AT_128],
        "rectangle_rotation_probability": D.RECTANGLE_ROTATION_PROBABILITY,
        "irregular_zoom_range": list(D.IRREGULAR_ZOOM_RANGE),
        "irregular_library_size": D.IRREGULAR_LIBRARY_SIZE,
        "blur_probability": D.MASK_BLUR_PROBABILITY,
        "blur_sigma_range": [v * scale for v in D.MASK_BLUR_SIGMA_RANGE_AT_128],
        "alpha_text_range": list(D.ALPHA_TEXT_RANGE),
        "alpha_bias_range": list(D.ALPHA_BIAS_RANGE),
        "tissue_sigma": D.TISSUE_SIGMA_AT_128 * scale,
        "foreign_patch_cache_size": D.FOREIGN_PATCH_CACHE_SIZE,
        "anomaly_probability": D.ANOMALY_PROBABILITY,
        "restrict_to_brain": D.RESTRICT_ANOMALY_TO_BRAIN,
        "min_brain_fraction": D.MIN_BRAIN_FRACTION_OF_CANVAS,
    }


def fit_patch_and_depth(median_slice: Sequence[float], patch: int, widths: Sequence[int],
                        attention_levels: Sequence[int]) -> tuple[list[int], list[int], list[int]]:
    """Patch [py, px], widths and attention levels that fit a median slice of ``median_slice`` px.

    Each patch side is min(P, median side rounded down to a multiple of 2^depth), depth being the
    number of downsamplings (len(widths) − 1). Where a side is below 2^depth, the deepest levels are
    dropped until it fits; attention levels that no longer exist move to the new lowest level. A
    median side below MIN_PATCH_SIDE is refused.
    """
    widths = list(widths)
    sides = [int(np.floor(s)) for s in median_slice]
    if min(sides) < D.MIN_PATCH_SIDE:
        raise PlansError(
            f"The median brain slice is {sides[0]}x{sides[1]} voxels at this spacing, smaller than the "
            f"smallest patch of {D.MIN_PATCH_SIDE} px (the anomaly canvas is half the patch). Check the brain "
            f"masks, or use a configuration with a finer spacing (2d)."
        )
    while len(widths) > 2 and min(sides) < 2 ** (len(widths) - 1):
        widths.pop()
    depth = len(widths) - 1
    patch_size = [min(patch, (s // 2 ** depth) * 2 ** depth) for s in sides]
    levels = [level for level in attention_levels if level < len(widths)]
    if attention_levels and not levels:
        levels = [len(widths) - 1]
    return patch_size, widths, levels


def plan_configuration(name: str, fingerprint: dict) -> dict:
    """One configuration of plans.json from its defaults and the fingerprint."""
    if name not in D.CONFIGURATIONS:
        raise PlansError(f"Unknown configuration {name!r}; available: {', '.join(D.CONFIGURATIONS)}.")
    spec = D.CONFIGURATIONS[name]
    spacing = target_spacing(fingerprint["median_spacing"], spec.min_spacing_mm)
    spacing_zyx = np.asarray(spacing[::-1])
    cases = fingerprint["cases"]
    resample = any(spacing_differs(case["spacing"], spacing, SPACING_RTOL) for case in cases)
    shapes = []
    for case in cases:
        shape = np.asarray(case["shape_after_crop"], dtype=np.float64)
        if resample and spacing_differs(case["spacing"], spacing, SPACING_RTOL):
            shape = np.maximum(1, np.floor(shape * np.asarray(case["spacing"][::-1]) / spacing_zyx + 0.5))
        shapes.append(shape)
    median_shape = [float(v) for v in np.median(shapes, axis=0)]

    notes = []
    try:
        patch_size, widths, attention_levels = fit_patch_and_depth(
            median_shape[1:], spec.patch, spec.widths, spec.attention_levels)
    except PlansError as error:
        raise PlansError(f"Configuration {name} ({spacing} mm) of {fingerprint['dataset_name']}: {error}") from None
    if len(widths) < len(spec.widths):
        notes.append(f"network reduced from {len(spec.widths)} to {len(widths)} levels to fit a median slice of "
                     f"{median_shape[1]:g}x{median_shape[2]:g} voxels")
    if patch_size != [spec.patch, spec.patch]:
        notes.append(f"patch reduced from {spec.patch} to {patch_size} (median slice "
                     f"{median_shape[1]:g}x{median_shape[2]:g} voxels)")
    for note in notes:
        logger.warning("Configuration %s: %s.", name, note)

    channel_keys = sorted(fingerprint["channel_names"], key=int)
    n_channels = len(channel_keys)
    clusters = fingerprint["tissue_clusters"]["channels"]
    network_kwargs = {
        "in_channels": n_channels,
        "out_channels": n_channels,
        "widths": widths,
        "num_res_blocks_down": spec.num_res_blocks_down,
        "num_res_blocks_up": spec.num_res_blocks_up,
        "attention_levels": attention_levels,
        "mid_attention": spec.mid_attention,
        "attention_head_dim": spec.attention_head_dim,
        "norm_groups": spec.norm_groups,
        "time_embed_dim": spec.time_embed_dim,
        "time_hidden_dim": spec.time_hidden_dim,
        "conditional": True,
    }
    return {
        "data_identifier": name,
        "spacing": spacing,
        "resample": bool(resample),
        "orientation": fingerprint.get("orientation"),  # None: a fingerprint from before reorientation
        "slice_axis": D.SLICE_AXIS,
        "median_shape": median_shape,
        "patch_size": patch_size,
        "batch": {"n_volumes": spec.n_volumes, "n_slices": spec.n_slices},
        "normalization": copy.deepcopy(fingerprint["tissue_clusters"]["normalization"]),
        "network": {"class_name": D.NETWORK_CLASS_NAME, "kwargs": network_kwargs},
        "schedule": dict(D.SCHEDULE),
        "anomaly_synthesis": scaled_anomaly_synthesis(min(patch_size)),
        "tissue_centroids": [list(clusters[key]["centroids"]) for key in channel_keys],
        "augmentation": copy.deepcopy(spec.augmentation),
        "training": copy.deepcopy(spec.training),
        "inference": {**copy.deepcopy(D.INFERENCE), "median_filter_size": spec.median_filter_size},
        "notes": notes,
    }


def plan(fingerprint: dict, configurations: Sequence[str] = tuple(D.CONFIGURATIONS)) -> dict:
    """plans.json for ``configurations`` from a dataset fingerprint."""
    if not configurations:
        raise PlansError("No configuration requested; choose among " + ", ".join(D.CONFIGURATIONS) + ".")
    plans = plans_header(fingerprint)
    plans["configurations"] = {name: plan_configuration(name, fingerprint) for name in configurations}
    return plans


def plans_header(fingerprint: dict) -> dict:
    """plans.json without configurations: what every configuration shares."""
    return {
        "dataset_name": fingerprint["dataset_name"],
        "plans_name": D.PLANS_NAME,
        "disyre_v2_version": __version__,
        "channel_names": dict(fingerprint["channel_names"]),
        "original_median_spacing": list(fingerprint["median_spacing"]),
        "original_median_shape": list(fingerprint["median_shape_after_crop"]),
        "num_training_cases": fingerprint["num_training_cases"],
        "configurations": {},
    }
