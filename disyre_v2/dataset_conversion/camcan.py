"""CamCAN (cc700, healthy adults) → raw dataset of healthy training cases.

Reads the skull-stripped and registered derivatives ``sub-CC110033_T1w_stripped_registered.nii.gz``
(``_T2w_...`` for T2), found anywhere under the root: in one flat folder, nested per subject, or
inside the BIDS tree. The BIDS scans themselves (``sub-CC110033/anat/sub-CC110033_T1w.nii.gz``) are
whole-head and, between T1 and T2, not co-registered; training on them would teach the model that
skull and neck are normal brain, so they are refused with a message saying what to do first, unless
the converter runs with ``--prepare``: then they are skull-stripped and registered to the template
first (T2 rigidly to T1), as disyre_v2_prepare does.

Subjects named in a validation list go to imagesTs without labels: held-out healthy cases (the
paper's 50 validation subjects), listed in dataset.json under ``validationCases``.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from disyre_v2.dataset_conversion.conversion_plan import (
    expected_name,
    handle_missing,
    listing,
    read_id_list,
    select_modalities,
    write_planned_cases,
)
from disyre_v2.dataset_conversion.file_search import find_by_suffix, index_niftis, key_matcher, require_folder
from disyre_v2.dataset_conversion.planned_case import PlannedCase

if TYPE_CHECKING:
    from disyre_v2.preparation.prepare_folder import PreparationOptions

logger = logging.getLogger(__name__)

MODALITIES = {"T1": "T1w", "T2": "T2w"}  # channel name → BIDS suffix
DERIVATIVE_SUFFIX = "_stripped_registered"
SUBJECT_KEY = key_matcher(r"(?:sub-)?(CC\d{6})")


class RawScansOnlyError(ValueError):
    """Only whole-head scans were found where skull-stripped, registered images are needed."""


def normalise_modalities(modalities: Sequence[str]) -> list[str]:
    """``["T1", "T2"]`` from any spelling (t1, T1w, ...); unknown names raise ValueError."""
    return select_modalities(modalities, MODALITIES, lambda m: m.upper().removesuffix("W"), "CamCAN")


def _subject_id(entry: str) -> str:
    return entry.removeprefix("sub-")


def plan_camcan(
    root: Path | str,
    modalities: Sequence[str] = ("T1",),
    validation_ids: Sequence[str] = (),
    skip_incomplete: bool = False,
    raw_scans: bool = False,
) -> list[PlannedCase]:
    """The cases to write: one per subject with a derivative for every requested modality; with
    ``raw_scans`` (the converter's --prepare), the whole-head BIDS scans where they exist."""
    root = require_folder(root)
    modalities = normalise_modalities(modalities)
    files = index_niftis(root)
    derived = {m: find_by_suffix(files, f"_{MODALITIES[m]}{DERIVATIVE_SUFFIX}", SUBJECT_KEY) for m in modalities}
    raw = {m: find_by_suffix(files, f"_{MODALITIES[m]}", SUBJECT_KEY) for m in modalities}

    if raw_scans and any(raw.values()):
        derived = raw  # prepared (skull-stripped, registered) before conversion
        suffix = ""
    else:
        suffix = DERIVATIVE_SUFFIX
    if not any(derived.values()):
        wanted = " and ".join(f"sub-CCxxxxxx_{MODALITIES[m]}{DERIVATIVE_SUFFIX}.nii[.gz]" for m in modalities)
        n_raw = sum(len(r) for r in raw.values())
        if n_raw:
            example = next(iter(next(r for r in raw.values() if r).values()))
            raise RawScansOnlyError(
                f"Found {n_raw} raw CamCAN scan(s) under {root} (e.g. {example}) but no skull-stripped, "
                f"registered image. The raw scans are whole-head and T1/T2 are not co-registered: skull "
                f"stripping (e.g. ROBEX) and affine registration (e.g. to the SRI24 atlas) are required "
                f"first: run again with --prepare (e.g. --prepare --skull_strip robex), or save the results "
                f"as {wanted} (anywhere under -i)."
            )
        raise FileNotFoundError(f"No CamCAN image under {root}: expected files named {wanted}.")

    subjects = sorted(set().union(*derived.values(), *raw.values()))
    missing: dict[str, list[str]] = {}
    for subject in subjects:
        folder = next((derived[m][subject].parent for m in modalities if subject in derived[m]), None)
        names = [expected_name(folder, f"sub-{subject}_{MODALITIES[m]}{suffix}")
                 for m in modalities if subject not in derived[m]]
        if names:
            missing[subject] = names
    skipped = handle_missing(missing, root, skip_incomplete)

    validation = [_subject_id(v) for v in validation_ids]
    unknown = [v for v in validation if v not in subjects]
    if unknown:
        raise ValueError(
            f"The validation list names {len(unknown)} subject(s) not found under {root}:\n{listing(unknown)}\n"
            f"Use CamCAN ids such as CC110033 or sub-CC110033, one per line."
        )
    skipped_validation = [v for v in validation if v in skipped]
    if skipped_validation:
        logger.warning("%d validation subject(s) are incomplete and left out: %s",
                       len(skipped_validation), ", ".join(skipped_validation))
    cases = [
        PlannedCase(subject, "Ts" if subject in validation else "Tr", tuple(derived[m][subject] for m in modalities))
        for subject in subjects if subject not in skipped
    ]
    logger.info("CamCAN: %d training and %d validation subject(s), channels %s.",
                sum(c.split == "Tr" for c in cases), sum(c.split == "Ts" for c in cases), ", ".join(modalities))
    return cases


def convert_camcan(
    root: Path | str,
    dataset_id: int,
    *,
    modalities: Sequence[str] = ("T1",),
    validation_list: Path | str | None = None,
    name: str | None = None,
    overwrite: bool = False,
    skip_incomplete: bool = False,
    raw_base: Path | str | None = None,
    preparation: PreparationOptions | None = None,
    num_processes: int = 0,
) -> Path:
    """Convert CamCAN's stripped and registered images into ``DatasetNNN_CamCAN_<modalities>``; with
    ``preparation``, its raw BIDS scans, prepared onto the template first.

    Healthy subjects go to imagesTr (brain mask: any channel > 0); subjects in ``validation_list``
    go to imagesTs without labels. Returns the dataset folder.
    """
    modalities = normalise_modalities(modalities)
    validation_ids = read_id_list(validation_list, "--validation_list") if validation_list is not None else []
    cases = plan_camcan(root, modalities, validation_ids, skip_incomplete, raw_scans=preparation is not None)
    extra = {"validationCases": [c.case_id for c in cases if c.split == "Ts"]} if validation_list is not None else {}
    held_out = "; imagesTs holds held-out healthy validation subjects without labels" if extra else ""
    return write_planned_cases(
        cases, dataset_id, name or "CamCAN_" + "_".join(modalities), modalities,
        overwrite=overwrite, raw_base=raw_base, progress_label="CamCAN", preparation=preparation,
        num_processes=num_processes, skip_incomplete=skip_incomplete,
        description=f"CamCAN cc700 healthy subjects, skull-stripped and registered ({', '.join(modalities)}){held_out}.",
        **extra,
    )
