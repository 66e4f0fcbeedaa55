"""Preprocess one case for a configuration: reorient, crop to the brain, normalise, resample.

The same code serves training (the dataset preprocessor saves its output) and prediction (the
predictor calls :func:`preprocess_case` on a test case in memory). The returned properties hold all
that :func:`disyre_v2.preprocessing.inverse.restore_to_raw` needs to map a result back.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from disyre_v2.imageio.errors import ImageFormatError
from disyre_v2.imageio.geometry import Geometry, axial_axis
from disyre_v2.plans_access import get_configuration
from disyre_v2.preprocessing.cropping import brain_bounding_box, crop_to_box, cropped_geometry
from disyre_v2.preprocessing.loading import load_case
from disyre_v2.preprocessing.normalization import apply_normalization, normalization_scales
from disyre_v2.preprocessing.orientation import check_orientation, reorient_array
from disyre_v2.preprocessing.resampling import SPACING_RTOL, resample_array, resampled_geometry, spacing_differs

logger = logging.getLogger(__name__)

# Bumped when the preprocessed format changes, so stale stores are redone rather than reused.
# 2: cases are reoriented (``orientation``) and always brought to the plans' spacing.
PREPROCESSING_FORMAT_VERSION = 2
# The configuration fields that change the preprocessed arrays.
_SIGNATURE_KEYS = ("data_identifier", "spacing", "normalization", "orientation")


def preprocessing_signature(configuration: dict) -> str:
    """A short hash of what determines the preprocessed arrays (to tell reusable outputs apart)."""
    relevant = {key: configuration.get(key) for key in _SIGNATURE_KEYS}
    relevant["format_version"] = PREPROCESSING_FORMAT_VERSION
    return hashlib.sha1(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def preprocess_case(image_paths: Sequence[Path | str], mask_path: Path | str | None, plans: dict,
                    configuration: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """Load and preprocess one case: float32 (C, Z, Y, X) in [0, 1], bool mask (Z, Y, X), properties."""
    config = get_configuration(plans, configuration)
    image_paths = [Path(p) for p in image_paths]
    check_channel_count(image_paths, plans)
    data, mask, geometry = load_case(image_paths, mask_path)
    data, mask, properties = preprocess_arrays(data, mask, geometry, config, image_paths)
    properties.update(
        configuration=configuration,
        image_paths=[str(p) for p in image_paths],
        mask_path=str(mask_path) if mask_path is not None else None,
    )
    return data, mask, properties


def check_channel_count(image_paths: Sequence[Path | str], plans: dict) -> None:
    """One file per channel of the plans, or an error naming the first file."""
    expected = len(plans.get("channel_names", {})) or None
    if expected is not None and len(image_paths) != expected:
        raise ImageFormatError(
            f"{image_paths[0]}: {len(image_paths)} channel file(s) given, but the plans of "
            f"{plans.get('dataset_name')} expect {expected} ({', '.join(plans['channel_names'].values())})."
        )


def preprocess_arrays(data: np.ndarray, mask: np.ndarray, geometry: Geometry, config: dict,
                      image_paths: Sequence[Path | str] | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Reorient, crop, normalise and resample arrays already loaded (``image_paths`` only name files in
    errors). Every case ends at the plans' spacing, whatever spacing it came with: a model scores
    slices at the spacing it was trained on (a 1 mm case through 2 mm plans is resampled, and back at
    export)."""
    where = str(image_paths[0]) if image_paths else "the case"
    normalization = config["normalization"]
    raw_geometry = geometry
    orientation = config.get("orientation")
    if orientation is not None:
        check_orientation(orientation)
        data, geometry = reorient_array(data, geometry, orientation)
        mask, _ = reorient_array(mask, raw_geometry, orientation)
    elif axial_axis(geometry)[0] != 0:
        logger.warning(
            "%s is stored with its inferior-superior axis on array axis %d, and these plans keep cases as stored "
            "(no 'orientation'): its slices are not axial. Re-plan with --clean to reorient every case.",
            where, axial_axis(geometry)[0])
    # The percentile is taken before cropping so that domain "all" means the whole field of view.
    scales = normalization_scales(data, mask, normalization, image_paths)
    box = brain_bounding_box(mask)
    cropped = cropped_geometry(geometry, box)
    data = apply_normalization(crop_to_box(data, box), crop_to_box(mask, box), scales, normalization["clip"])
    mask = np.ascontiguousarray(crop_to_box(mask, box))

    resampled = spacing_differs(geometry.spacing, config["spacing"], SPACING_RTOL)
    target = cropped
    if resampled:
        target = resampled_geometry(cropped, config["spacing"])
        data = np.stack([resample_array(channel, cropped, target, "cubic") for channel in data])
        mask = resample_array(mask, cropped, target, "nearest")
        if not mask.any():
            raise ImageFormatError(
                f"{where}: the brain mask vanishes when resampled to {list(config['spacing'])} mm; the brain "
                f"is too small for this configuration's spacing. Check the mask, or plan a finer spacing."
            )
        # Cubic interpolation overshoots: back into the clip range, background exactly 0 again.
        lo, hi = normalization["clip"]
        data = np.clip(data, lo, hi, out=data) * mask[None]

    properties = {
        "raw_geometry": raw_geometry.to_dict(),
        "shape_raw": list(raw_geometry.shape_zyx),
        "orientation": orientation,
        "oriented_geometry": geometry.to_dict(),
        "crop_box": box,
        "shape_cropped": list(cropped.shape_zyx),
        "cropped_geometry": cropped.to_dict(),
        "resampled": resampled,
        "preprocessed_geometry": target.to_dict(),
        "shape_preprocessed": list(target.shape_zyx),
        "normalization": {**normalization, "scales": scales},
        "brain_voxels": int(mask.sum()),
        "preprocessing_signature": preprocessing_signature(config),
    }
    return np.ascontiguousarray(data, dtype=np.float32), mask, properties
