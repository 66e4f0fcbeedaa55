"""IXI (healthy adults) → raw dataset of healthy training cases, one modality per dataset.

IXI ships ``IXI-T1/IXI002-Guys-0828-T1.nii.gz`` (and ``IXI-T2``, ``IXI-PD``). Its T1 and T2 are on
different grids and not co-registered, so a dataset holds one modality. The scans are whole-head, and
this pipeline assumes brain-only input (background outside the brain mask is zeroed), so a brain
mask is required. Either:

- skull-stripped files ``IXI002-Guys-0828-T1_stripped.nii.gz`` (or ``..._stripped_registered``)
  anywhere under the root: they are copied and their mask is any voxel > 0; or
- ``masks``: a folder of brain masks on the grids of the scans, named after them
  (``IXI002-Guys-0828-T1_mask.nii.gz``, ``IXI002-Guys-0828-T1.nii.gz`` or ``IXI002-Guys-0828_mask.nii.gz``):
  the whole-head scans are copied and the masks go to masksTr, where they delimit the brain for
  every later stage.

With neither, conversion is refused with a message saying so, unless the converter runs with
``--prepare``: then the whole-head scans are skull-stripped and registered to the template first.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from disyre_v2.dataset_conversion.conversion_plan import expected_name, handle_missing, write_planned_cases
from disyre_v2.dataset_conversion.file_search import (
    DuplicateFilesError,
    find_by_suffix,
    index_niftis,
    key_matcher,
    require_folder,
)
from disyre_v2.dataset_conversion.planned_case import PlannedCase

if TYPE_CHECKING:
    from disyre_v2.preparation.prepare_folder import PreparationOptions

logger = logging.getLogger(__name__)

MODALITIES = ("T1", "T2", "PD")
SUBJECT_KEY = key_matcher(r"(IXI\d{3}-[A-Za-z]+-\d{4})")
STRIPPED_SUFFIXES = ("_stripped_registered", "_stripped")  # preferred first


class UnstrippedScansError(ValueError):
    """IXI scans are whole-head and neither stripped copies nor brain masks were given."""


def normalise_modality(modality: str) -> str:
    key = modality.upper()
    if key not in MODALITIES:
        raise ValueError(f"Unknown IXI modality {modality!r}: choose one of {', '.join(MODALITIES)}.")
    return key


def _is_mask_of(stem: str, subject: str, modality: str) -> bool:
    """``IXI002-Guys-0828`` followed by nothing, ``_anything`` or ``-T1[_anything]`` (not ``-T2``)."""
    if not stem.lower().startswith(subject.lower()):
        return False
    rest = stem[len(subject):].lower()
    tag = f"-{modality}".lower()
    if rest == "" or rest[0] in "_.":
        return True
    return rest.startswith(tag) and (len(rest) == len(tag) or not rest[len(tag)].isalnum())


def _find_masks(masks: Path, subjects: list[str], modality: str) -> dict[str, Path]:
    """The mask of each subject in the masks folder, matched by the scan's name."""
    files = index_niftis(masks)
    found: dict[str, Path] = {}
    for subject in subjects:
        candidates = [f.path for f in files if _is_mask_of(f.stem, subject, modality)]
        if len(candidates) > 1:
            raise DuplicateFilesError(
                f"Several files in {masks} could be the {modality} brain mask of {subject}: "
                f"{', '.join(str(c) for c in candidates)}. Keep one per subject."
            )
        if candidates:
            found[subject] = candidates[0]
    return found


def plan_ixi(root: Path | str, modality: str, masks: Path | str | None = None,
             skip_incomplete: bool = False, raw_scans: bool = False) -> list[PlannedCase]:
    """The healthy training cases to write, one per subject with a scan of ``modality``; with
    ``raw_scans`` (the converter's --prepare), the whole-head scans, which preparation skull-strips."""
    root = require_folder(root)
    modality = normalise_modality(modality)
    files = index_niftis(root)
    if masks is not None:  # a masks folder inside -i may name masks like the scans: not scans
        masks = require_folder(masks, "--masks")
        files = [f for f in files if masks.resolve() not in f.path.resolve().parents]
    raw = find_by_suffix(files, f"-{modality}", SUBJECT_KEY)
    stripped: dict[str, Path] = {}
    for suffix in reversed(STRIPPED_SUFFIXES):  # the preferred suffix overwrites
        stripped.update(find_by_suffix(files, f"-{modality}{suffix}", SUBJECT_KEY))
    if not raw and not stripped:
        raise FileNotFoundError(
            f"No IXI {modality} scan under {root}: expected files such as IXI002-Guys-0828-{modality}.nii.gz "
            f"(the IXI-{modality} archive, unpacked)."
        )

    subjects = sorted(set(raw) | set(stripped))
    missing: dict[str, list[str]] = {}
    if masks is not None:
        if stripped:
            logger.info("--masks given: using the whole-head scans with these masks; the %d stripped file(s) are ignored.",
                        len(stripped))
        subjects = sorted(raw)
        mask_of = _find_masks(masks, subjects, modality)
        missing = {s: [expected_name(masks, f"{s}-{modality}_mask")] for s in subjects if s not in mask_of}
        images = raw
    elif raw_scans and raw:
        mask_of = {}
        images = raw
        subjects = sorted(raw)
    elif stripped:
        mask_of = {}
        images = stripped
        missing = {s: [expected_name(raw[s].parent, f"{s}-{modality}{STRIPPED_SUFFIXES[-1]}")]
                   for s in subjects if s not in stripped}
    else:
        raise UnstrippedScansError(
            f"Found {len(raw)} IXI {modality} scan(s) under {root} (e.g. {next(iter(raw.values()))}) but no "
            f"skull-stripped copy and no brain masks. IXI scans are whole-head, and the pipeline needs the "
            f"brain delimited: run again with --prepare (e.g. --prepare --skull_strip robex), or skull-strip them "
            f"yourself (e.g. ROBEX or HD-BET) and either save the results as "
            f"IXI002-Guys-0828-{modality}_stripped.nii.gz anywhere under -i, or pass --masks with a folder of "
            f"brain masks named IXI002-Guys-0828-{modality}_mask.nii.gz."
        )
    skipped = handle_missing(missing, root, skip_incomplete)
    cases = [PlannedCase(s, "Tr", (images[s],), mask_file=mask_of.get(s)) for s in subjects if s not in skipped]
    logger.info("IXI %s: %d subject(s).", modality, len(cases))
    return cases


def convert_ixi(
    root: Path | str,
    dataset_id: int,
    modality: str,
    *,
    masks: Path | str | None = None,
    name: str | None = None,
    overwrite: bool = False,
    skip_incomplete: bool = False,
    raw_base: Path | str | None = None,
    preparation: PreparationOptions | None = None,
    num_processes: int = 0,
) -> Path:
    """Convert one IXI modality into ``DatasetNNN_IXI_<modality>`` (imagesTr); returns its folder. With
    ``preparation``, the whole-head scans are prepared onto the template first."""
    modality = normalise_modality(modality)
    cases = plan_ixi(root, modality, masks, skip_incomplete, raw_scans=preparation is not None)
    source = ("whole-head scans with the given brain masks" if masks is not None
              else "whole-head scans" if preparation is not None else "skull-stripped scans")
    return write_planned_cases(
        cases, dataset_id, name or f"IXI_{modality}", [modality], overwrite=overwrite, raw_base=raw_base,
        progress_label=f"IXI {modality}", preparation=preparation, num_processes=num_processes,
        skip_incomplete=skip_incomplete,
        description=f"IXI healthy subjects, {modality} only ({source}); IXI T1/T2/PD are not co-registered.",
    )
