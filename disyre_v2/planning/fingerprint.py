"""The dataset fingerprint: what planning needs to know about the healthy training cases.

Per case: spacing, shape, brain bounding-box shape, brain volume, normalisation scale. Per channel:
intensity statistics of brain voxels and the k-Means tissue clusters (method_numbers.md ("Anomaly synthesis")), both from a
seeded, fixed-budget sample of brain voxels. Case i draws its sample from a generator seeded with
(seed, i), so the result does not depend on the number of worker processes.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from disyre_v2.dataset.dataset_json import load_dataset_json
from disyre_v2.dataset.layout import list_raw_cases
from disyre_v2.planning.defaults import (
    FINGERPRINT_SEED,
    INTENSITY_PERCENTILES,
    ORIENTATION,
    INTENSITY_SAMPLE_BUDGET,
    NORMALIZATION,
    NUM_TISSUE_CLUSTERS,
)
from disyre_v2.planning.tissue_clusters import fit_tissue_clusters
from disyre_v2.preprocessing.cropping import box_shape, brain_bounding_box
from disyre_v2.preprocessing.loading import load_case
from disyre_v2.preprocessing.normalization import normalization_scales
from disyre_v2.preprocessing.orientation import reorient_array
from disyre_v2.preprocessing.parallel import map_cases

logger = logging.getLogger(__name__)


def _case_fingerprint(job: tuple) -> dict:
    index, case, samples_per_case, seed, normalization = job
    data, mask, raw_geometry = load_case(case.image_paths, case.mask_path)
    # Shapes and spacings as preprocessing will see them: in the canonical orientation.
    data, geometry = reorient_array(data, raw_geometry, ORIENTATION)
    mask, _ = reorient_array(mask, raw_geometry, ORIENTATION)
    scales = normalization_scales(data, mask, normalization, case.image_paths)
    brain = np.flatnonzero(mask)
    rng = np.random.default_rng([seed, index])
    if brain.size > samples_per_case:
        brain = np.sort(rng.choice(brain, size=samples_per_case, replace=False))
    raw = data.reshape(data.shape[0], -1)[:, brain]
    lo, hi = normalization["clip"]
    normalized = np.clip(np.maximum(raw, 0.0) / np.asarray(scales, np.float32)[:, None], lo, hi)
    n_brain = int(mask.sum())
    return {
        "case_id": case.case_id,
        "spacing": list(geometry.spacing),
        "shape": list(geometry.shape_zyx),
        "shape_after_crop": list(box_shape(brain_bounding_box(mask))),
        "brain_voxels": n_brain,
        "brain_volume_ml": n_brain * float(np.prod(geometry.spacing)) / 1000.0,
        "normalization_scales": scales,
        "_raw_sample": raw.astype(np.float32),
        "_normalized_sample": normalized.astype(np.float32),
    }


def _intensity_statistics(values: np.ndarray) -> dict:
    values = values.astype(np.float64)
    return {
        "mean": float(values.mean()),
        "std": float(values.std()),
        "min": float(values.min()),
        "max": float(values.max()),
        "percentiles": {str(float(q)): float(np.percentile(values, q)) for q in INTENSITY_PERCENTILES},
    }


def extract_fingerprint(raw_dataset_folder: Path | str, num_workers: int = 1, seed: int = FINGERPRINT_SEED,
                        sample_budget: int = INTENSITY_SAMPLE_BUDGET, num_clusters: int = NUM_TISSUE_CLUSTERS,
                        normalization: dict | None = None, progress: bool = True) -> dict:
    """The fingerprint of the training cases of a raw dataset folder (not written; see
    :func:`disyre_v2.dataset.dataset_json.write_json_atomic`)."""
    folder = Path(raw_dataset_folder)
    normalization = dict(NORMALIZATION if normalization is None else normalization)
    dataset_json = load_dataset_json(folder)
    cases = list_raw_cases(folder, "Tr", dataset_json)
    if not cases:
        raise ValueError(f"{folder / 'imagesTr'} holds no training case: a fingerprint needs healthy training data.")
    samples_per_case = max(1, math.ceil(sample_budget / len(cases)))
    jobs = [(i, case, samples_per_case, seed, normalization) for i, case in enumerate(cases)]
    per_case = map_cases(_case_fingerprint, jobs, num_workers, desc="fingerprint", progress=progress)

    channel_names = dataset_json["channel_names"]
    raw = np.concatenate([c.pop("_raw_sample") for c in per_case], axis=1)
    normalized = np.concatenate([c.pop("_normalized_sample") for c in per_case], axis=1)
    statistics, clusters = {}, {}
    for c, key in enumerate(sorted(channel_names, key=int)):
        statistics[key] = _intensity_statistics(raw[c])
        clusters[key] = fit_tissue_clusters(normalized[c], num_clusters, seed, channel_name=channel_names[key])
        logger.info("Channel %s tissue centroids: %s", channel_names[key],
                    ", ".join(f"{v:.3f}" for v in clusters[key]["centroids"]))
    return {
        "dataset_name": folder.name,
        "channel_names": channel_names,
        "num_training_cases": len(cases),
        "orientation": ORIENTATION,
        "case_ids": [c["case_id"] for c in per_case],
        "cases": per_case,
        "median_spacing": [float(v) for v in np.median([c["spacing"] for c in per_case], axis=0)],
        "median_shape_after_crop": [float(v) for v in np.median([c["shape_after_crop"] for c in per_case], axis=0)],
        "sampling": {"seed": seed, "budget": sample_budget, "samples_per_case": samples_per_case,
                     "num_samples": int(raw.shape[1])},
        "intensity_statistics": statistics,
        "tissue_clusters": {"num_clusters": num_clusters, "seed": seed, "normalization": normalization,
                            "channels": clusters},
    }
