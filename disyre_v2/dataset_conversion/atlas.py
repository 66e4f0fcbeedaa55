"""ATLAS R2.0 (chronic stroke lesions, T1) → raw dataset of labelled test cases.

Reads ``ATLAS_2/Training/R0xx/sub-r001s001/ses-1/anat/`` (the T1 ``..._space-MNI152NLin2009aSym_T1w``
and the lesion mask ``..._label-L_desc-T1lesion_mask``) from anywhere under the root. Skull-stripped
and registered derivatives ``..._T1w_stripped_registered`` are used instead of the T1 whenever the
tree holds any: then every subject needs one, so that the test set is not a mix of stripped and
whole-head images. A registered T1 needs a lesion mask on its grid: ``..._mask_registered`` or
``..._mask_stripped_registered`` when present, else the original mask (the grids are checked).

Subjects under ``Testing`` have no released masks: they are skipped with a warning. ``exclude``
drops subjects (problem cases), ``include`` keeps only the listed ones (a published subset such as
the 571-case list).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import SimpleITK as sitk

from disyre_v2.dataset_conversion.conversion_plan import (
    expected_name,
    handle_missing,
    listing,
    read_id_list,
    write_planned_cases,
)
from disyre_v2.dataset_conversion.file_search import (
    find_by_suffix,
    index_niftis,
    is_under_folder_named,
    key_matcher,
    require_folder,
)
from disyre_v2.dataset_conversion.planned_case import PlannedCase
from disyre_v2.imageio.errors import ImageFormatError
from disyre_v2.imageio.geometry import Geometry, grid_differences
from disyre_v2.imageio.names import nifti_stem

logger = logging.getLogger(__name__)

# The case key is the BIDS subject and session, e.g. "sub-r001s001_ses-1"; anything may follow
# (the space entity of the file name, for instance).
CASE_KEY = key_matcher(r"(sub-r\d{3}s\d{3}(?:_ses-[A-Za-z0-9]+)?)(?:_.*)?")
T1_SUFFIX = "_T1w"
DERIVATIVE_SUFFIX = "_T1w_stripped_registered"
MASK_SUFFIX = "_label-L_desc-T1lesion_mask"
REGISTERED_MASK_SUFFIXES = (MASK_SUFFIX + "_registered", MASK_SUFFIX + "_stripped_registered")
LABELS = {"background": 0, "lesion": 1}


def _matches(entry: str, case_id: str) -> bool:
    """A list entry names a case by its full key, its subject (``sub-r001s001``) or bare id (``r001s001``)."""
    subject = case_id.split("_ses-")[0]
    return entry in (case_id, subject, subject.removeprefix("sub-"))


def _select(case_ids: list[str], entries: list[str], option: str) -> list[str]:
    """The cases named by the entries; entries naming nothing are reported."""
    chosen = [c for c in case_ids if any(_matches(e, c) for e in entries)]
    unmatched = [e for e in entries if not any(_matches(e, c) for c in case_ids)]
    if unmatched and len(unmatched) == len(entries):
        raise ValueError(
            f"No entry of {option} matches a subject found ({', '.join(unmatched[:5])}"
            f"{', ...' if len(unmatched) > 5 else ''}). Use ATLAS ids "
            f"such as sub-r001s001, r001s001 or sub-r001s001_ses-1, one per line."
        )
    if unmatched:
        logger.warning("%d entr(ies) of %s match no subject found:\n%s", len(unmatched), option, listing(unmatched))
    return chosen


def _read_grid(path: Path) -> Geometry:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        raise ImageFormatError(f"{path} is not a readable image; check that the file is complete.") from None
    dim = reader.GetDimension()  # 4D files with one volume are 3D images too: keep x, y, z
    direction = [reader.GetDirection()[r * dim + c] for r in range(3) for c in range(3)]
    return Geometry(tuple(reader.GetSpacing()[:3]), tuple(reader.GetOrigin()[:3]), tuple(direction),
                    tuple(reader.GetSize()[:3]))


def _pick_mask(case_id: str, t1: Path, use_derivatives: bool,
               masks: dict[str, Path], registered_masks: list[dict[str, Path]]) -> Path | None:
    if use_derivatives:
        for candidates in registered_masks:
            if case_id in candidates:
                return candidates[case_id]
    mask = masks.get(case_id)
    if mask is not None and use_derivatives:
        # A lesion mask in MNI space does not fit a T1 registered elsewhere; say so before copying.
        diffs = grid_differences(_read_grid(t1), _read_grid(mask))
        if diffs:
            raise ImageFormatError(
                f"{mask} is not on the grid of the registered image {t1} ({'; '.join(diffs)}). Apply the "
                f"same registration to the lesion mask (nearest-neighbour) and save the result next to the "
                f"registered image as {nifti_stem(mask.name)}_registered.nii.gz."
            )
    return mask


def plan_atlas(root: Path | str, exclude: Sequence[str] = (), include: Sequence[str] | None = None,
               skip_incomplete: bool = False) -> list[PlannedCase]:
    """The labelled test cases to write, one per Training subject (minus exclusions)."""
    root = require_folder(root)
    files = index_niftis(root)
    raw_t1 = find_by_suffix(files, T1_SUFFIX, CASE_KEY)
    derived_t1 = find_by_suffix(files, DERIVATIVE_SUFFIX, CASE_KEY)
    masks = find_by_suffix(files, MASK_SUFFIX, CASE_KEY)
    registered_masks = [find_by_suffix(files, s, CASE_KEY) for s in REGISTERED_MASK_SUFFIXES]
    use_derivatives = bool(derived_t1)
    images = derived_t1 if use_derivatives else raw_t1
    if not raw_t1 and not derived_t1:
        raise FileNotFoundError(
            f"No ATLAS T1 image under {root}: expected files such as "
            f"sub-r001s001_ses-1_space-MNI152NLin2009aSym_T1w.nii.gz (or ..._T1w_stripped_registered.nii.gz)."
        )

    all_ids = sorted(set(raw_t1) | set(derived_t1))
    # Registered masks only fit registered images.
    has_mask = set(masks).union(*registered_masks) if use_derivatives else set(masks)
    testing = [c for c in all_ids if c not in has_mask and any(
        is_under_folder_named(found[c], root, "Testing") for found in (raw_t1, derived_t1) if c in found)]
    if testing:
        logger.warning("Skipping %d subject(s) under Testing: ATLAS releases no lesion masks for them.", len(testing))
    case_ids = [c for c in all_ids if c not in testing]
    if include is not None:
        case_ids = _select(case_ids, list(include), "--include")
    if exclude:
        dropped = _select(case_ids, list(exclude), "--exclude")
        case_ids = [c for c in case_ids if c not in dropped]
        logger.info("Excluded %d subject(s) listed in --exclude.", len(dropped))

    missing: dict[str, list[str]] = {}
    for case_id in case_ids:
        found = derived_t1.get(case_id) or raw_t1.get(case_id)
        names = []
        if case_id not in images:
            names.append(expected_name(found.parent, f"{case_id}_space-MNI152NLin2009aSym{DERIVATIVE_SUFFIX}"))
        if case_id not in has_mask:
            names.append(expected_name(found.parent, f"{case_id}_space-MNI152NLin2009aSym{MASK_SUFFIX}"))
        if names:
            missing[case_id] = names
    skipped = handle_missing(missing, root, skip_incomplete)
    case_ids = [c for c in case_ids if c not in skipped]

    if not use_derivatives and case_ids:
        logger.warning(
            "No skull-stripped derivative (..._T1w_stripped_registered) under %s: converting the defaced, "
            "whole-head T1 images. Their brain masks (any voxel > 0) cover the head; models trained on "
            "skull-stripped CamCAN will flag skull and scalp. Skull-strip and register them for the benchmark.",
            root,
        )
    return [
        PlannedCase(c, "Ts", (images[c],), label_file=_pick_mask(c, images[c], use_derivatives, masks, registered_masks))
        for c in case_ids
    ]


def convert_atlas(
    root: Path | str,
    dataset_id: int,
    *,
    exclude: Path | str | None = None,
    include: Path | str | None = None,
    name: str | None = None,
    overwrite: bool = False,
    skip_incomplete: bool = False,
    raw_base: Path | str | None = None,
) -> Path:
    """Convert ATLAS R2.0 Training into ``DatasetNNN_ATLAS`` (imagesTs + labelsTs); returns its folder."""
    exclude_ids = read_id_list(exclude, "--exclude") if exclude is not None else []
    include_ids = read_id_list(include, "--include") if include is not None else None
    cases = plan_atlas(root, exclude_ids, include_ids, skip_incomplete)
    subset = "all Training subjects" if include is None and exclude is None else (
        f"Training subjects{' listed in ' + Path(include).name if include else ''}"
        f"{' minus those in ' + Path(exclude).name if exclude else ''}")
    return write_planned_cases(
        cases, dataset_id, name or "ATLAS", ["T1"], overwrite=overwrite, raw_base=raw_base,
        labels=LABELS, progress_label="ATLAS",
        description=f"ATLAS R2.0 chronic stroke T1 with lesion masks ({subset}, {len(cases)} cases).",
    )
