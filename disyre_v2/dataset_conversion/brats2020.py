"""BraTS 2020 (glioma) → raw dataset of labelled test cases.

Reads ``BraTS20_Training_001/BraTS20_Training_001_{flair,t1,t1ce,t2,seg}.nii.gz`` from anywhere
under the root: the official ``MICCAI_BraTS2020_TrainingData`` folder, or the widely shared copy with
uncompressed ``.nii`` files under ``BraTS2020_TrainingData/MICCAI_BraTS2020_TrainingData``, in which
case 355's segmentation is misnamed ``W39_1998.09.19_Segm.nii`` (taken as its ``_seg``).

The images are already skull-stripped and co-registered (SRI24, 1 mm): they are copied unchanged
with their geometry, and the brain mask is any selected channel > 0. Labels keep their values
{0, 1 necrosis, 2 edema, 4 enhancing}; the anomaly ground truth is label > 0. Validation cases
(``BraTS20_Validation_*``) have no released segmentation and are skipped with a warning.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Sequence

from disyre_v2.dataset_conversion.conversion_plan import (
    expected_name,
    handle_missing,
    select_modalities,
    write_planned_cases,
)
from disyre_v2.dataset_conversion.file_search import NiftiFile, find_by_suffix, index_niftis, key_matcher, require_folder
from disyre_v2.dataset_conversion.planned_case import PlannedCase

logger = logging.getLogger(__name__)

MODALITIES = {"flair": "FLAIR", "t1": "T1", "t1ce": "T1ce", "t2": "T2"}  # file suffix → channel name
CASE_KEY = key_matcher(r"(BraTS20_(?:Training|Validation)_\d{3})")
SEG_SUFFIX = "_seg"
# Case 355 of the release ships its segmentation as "W39_1998.09.19_Segm.nii".
MISNAMED_SEG = re.compile(r".*_segm", re.IGNORECASE)
LABELS = {"background": 0, "necrosis": 1, "edema": 2, "enhancing": 4}


def normalise_modalities(modalities: Sequence[str]) -> list[str]:
    """File suffixes (``t1``, ``t2`` ...) from any spelling; unknown names raise ValueError."""
    return select_modalities(modalities, MODALITIES, lambda m: m.lower().lstrip("_"), "BraTS")


def _misnamed_seg(files: list[NiftiFile], folder: Path, case_id: str) -> Path | None:
    candidates = [f.path for f in files if f.path.parent == folder and MISNAMED_SEG.fullmatch(f.stem)]
    if len(candidates) > 1:
        raise ValueError(f"{folder} holds several '*_Segm' files ({', '.join(p.name for p in candidates)}); "
                         f"keep the segmentation of {case_id} only, or name it {case_id}_seg.nii.gz.")
    if candidates:
        logger.info("Using %s as the segmentation of %s (misnamed in the release).", candidates[0].name, case_id)
    return candidates[0] if candidates else None


def plan_brats2020(root: Path | str, modalities: Sequence[str] = ("t1",), skip_incomplete: bool = False) -> list[PlannedCase]:
    """The labelled test cases to write, one per Training case."""
    root = require_folder(root)
    modalities = normalise_modalities(modalities)
    files = index_niftis(root)
    images = {m: find_by_suffix(files, f"_{m}", CASE_KEY) for m in modalities}
    segs = find_by_suffix(files, SEG_SUFFIX, CASE_KEY)
    all_ids = sorted(set(segs).union(*images.values()))
    if not all_ids:
        raise FileNotFoundError(
            f"No BraTS 2020 case under {root}: expected folders such as BraTS20_Training_001 holding "
            f"BraTS20_Training_001_t1.nii.gz (or .nii) and BraTS20_Training_001_seg.nii.gz."
        )
    validation = [c for c in all_ids if "_Validation_" in c and c not in segs]
    if validation:
        logger.warning("Skipping %d BraTS20_Validation case(s): no segmentation is released for them.", len(validation))
    case_ids = [c for c in all_ids if c not in validation]

    missing: dict[str, list[str]] = {}
    for case_id in case_ids:
        folder = next((images[m][case_id].parent for m in modalities if case_id in images[m]), None)
        if case_id not in segs and folder is not None:
            seg = _misnamed_seg(files, folder, case_id)
            if seg is not None:
                segs[case_id] = seg
        folder = folder or segs[case_id].parent
        names = [expected_name(folder, f"{case_id}_{m}") for m in modalities if case_id not in images[m]]
        if case_id not in segs:
            names.append(expected_name(folder, f"{case_id}{SEG_SUFFIX}"))
        if names:
            missing[case_id] = names
    skipped = handle_missing(missing, root, skip_incomplete)
    cases = [
        PlannedCase(c, "Ts", tuple(images[m][c] for m in modalities), label_file=segs[c])
        for c in case_ids if c not in skipped
    ]
    logger.info("BraTS 2020: %d case(s), channels %s.", len(cases), ", ".join(MODALITIES[m] for m in modalities))
    return cases


def convert_brats2020(
    root: Path | str,
    dataset_id: int,
    *,
    modalities: Sequence[str] = ("t1",),
    name: str | None = None,
    overwrite: bool = False,
    skip_incomplete: bool = False,
    raw_base: Path | str | None = None,
) -> Path:
    """Convert BraTS 2020 Training into ``DatasetNNN_BraTS2020_<modalities>`` (imagesTs + labelsTs)."""
    modalities = normalise_modalities(modalities)
    channel_names = [MODALITIES[m] for m in modalities]
    cases = plan_brats2020(root, modalities, skip_incomplete)
    return write_planned_cases(
        cases, dataset_id, name or "BraTS2020_" + "_".join(channel_names), channel_names,
        overwrite=overwrite, raw_base=raw_base, labels=LABELS, progress_label="BraTS2020",
        description=f"BraTS 2020 Training glioma cases ({', '.join(channel_names)}), skull-stripped, SRI24 1 mm; "
        f"labels 1 necrosis, 2 edema, 4 enhancing (anomalous: > 0).",
    )
