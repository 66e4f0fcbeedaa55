"""Dataset integrity check: run after conversion and before planning.

It collects every problem (each naming its file and the fix) and raises them together, so a user
fixes a dataset in one pass rather than one error at a time.
"""
from __future__ import annotations

import logging
from pathlib import Path

from tqdm import tqdm

from disyre_v2.dataset.dataset_json import DatasetJsonError, load_dataset_json
from disyre_v2.dataset.layout import (
    RawCase,
    case_ids_in,
    is_safe_case_name,
    list_raw_cases,
    split_channel_file_name,
)
from disyre_v2.imageio.errors import ImageFormatError
from disyre_v2.errors import UserError
from disyre_v2.imageio.reader import read_case, read_label, read_mask

logger = logging.getLogger(__name__)


class DatasetIntegrityError(ValueError):
    """A raw dataset does not follow the format; ``problems`` lists each finding."""

    def __init__(self, folder: Path, problems: list[str]):
        self.problems = problems
        listing = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"Dataset {folder} failed the integrity check ({len(problems)} problem(s)):\n{listing}")


def verify_dataset_integrity(dataset_folder: Path | str, read_images: bool = True, progress: bool = True) -> dict:
    """Check a raw dataset folder; returns its dataset.json, raises :class:`DatasetIntegrityError`.

    Checks: dataset.json is valid; every file in images*/masks*/labelsTs follows the naming
    pattern; every case has every channel; case names are safe and not shared between training and
    test; numTraining/numTest match; masks and labels exist where declared. With ``read_images``
    also: every file is a readable 3D image without NaN/inf, channels, mask and label share one
    grid, labels are integer-valued, and masks are not empty.
    """
    folder = Path(dataset_folder)
    if not folder.is_dir():
        raise DatasetIntegrityError(folder, [f"{folder} is not a folder."])
    try:
        dataset_json = load_dataset_json(folder)
    except DatasetJsonError as error:
        raise DatasetIntegrityError(folder, [str(error)]) from None

    problems: list[str] = []
    ending = dataset_json["file_ending"]
    n_channels = len(dataset_json["channel_names"])
    if not (folder / "imagesTr").is_dir() and dataset_json["numTraining"] > 0:
        problems.append(f"{folder / 'imagesTr'} is missing but numTraining is {dataset_json['numTraining']}.")

    cases_by_split = {}
    for split, count_key in (("Tr", "numTraining"), ("Ts", "numTest")):
        images = folder / f"images{split}"
        problems += _check_file_names(images, ending, n_channels)
        ids = case_ids_in(images, ending)
        if len(ids) != dataset_json[count_key]:
            problems.append(f"{folder / 'dataset.json'}: {count_key} is {dataset_json[count_key]} but {images} holds {len(ids)} case(s).")
        for case_id in ids:
            if not is_safe_case_name(case_id):
                problems.append(
                    f"{images}: case name {case_id!r} is not safe as a file name; use letters, digits, "
                    f"'_' and '-' only (and no '_mask' ending)."
                )
        try:
            cases = list_raw_cases(folder, split, dataset_json)
        except UserError:  # an undeclared channel file, already listed by _check_file_names
            cases = []
        cases_by_split[split] = cases
        for case in cases:
            missing = [str(p) for p in case.image_paths if not p.is_file()]
            if missing:
                problems.append(f"case {case.case_id}: channel file(s) missing: {', '.join(missing)}.")
        problems += _check_declared(folder, split, "masks", cases, dataset_json, ending)
        if split == "Ts":
            problems += _check_declared(folder, split, "labels", cases, dataset_json, ending)
    shared = {c.case_id for c in cases_by_split["Tr"]} & {c.case_id for c in cases_by_split["Ts"]}
    if shared:
        problems.append(f"case name(s) used in both imagesTr and imagesTs: {', '.join(sorted(shared))}; names must be unique.")

    if read_images and not problems:
        all_cases = cases_by_split["Tr"] + cases_by_split["Ts"]
        for case in tqdm(all_cases, desc="checking images", disable=not progress, unit="case"):
            problems += _check_case_images(case)
    if problems:
        raise DatasetIntegrityError(folder, problems)
    logger.info("Dataset %s passed the integrity check (%d training, %d test cases).",
                folder.name, len(cases_by_split["Tr"]), len(cases_by_split["Ts"]))
    return dataset_json


def _check_file_names(images: Path, ending: str, n_channels: int) -> list[str]:
    problems = []
    if not images.is_dir():
        return problems
    for path in sorted(images.iterdir()):
        if path.name.startswith("."):
            continue
        parsed = split_channel_file_name(path.name, ending)
        if parsed is None:
            problems.append(f"{path} does not follow the pattern CASE_0000{ending}; rename or remove it.")
        elif parsed[1] >= n_channels:
            problems.append(f"{path} is channel {parsed[1]} but dataset.json declares {n_channels} channel(s).")
    return problems


def _check_declared(folder: Path, split: str, kind: str, cases: list[RawCase], dataset_json: dict, ending: str) -> list[str]:
    """Masks/labels: present for every case where declared, and none without a case."""
    problems = []
    sub = folder / f"{kind}{split}"
    declared = bool(dataset_json.get(f"{kind}{split}", False))
    ids = {c.case_id for c in cases}
    if declared:
        for case in cases:
            path = case.mask_path if kind == "masks" else case.label_path
            if path is None:
                problems.append(f"case {case.case_id}: {sub / (case.case_id + ending)} is missing but dataset.json declares {kind}{split}.")
    if sub.is_dir():
        present = [p for p in sorted(sub.iterdir()) if not p.name.startswith(".")]
        for path in present:
            if not path.name.endswith(ending) or path.name[: -len(ending)] not in ids:
                problems.append(f"{path} belongs to no case in images{split}; rename or remove it.")
        if present and not declared:
            logger.warning("%s holds files but dataset.json does not declare %s%s; they will be used anyway.", sub, kind, split)
    return problems


def _check_case_images(case: RawCase) -> list[str]:
    try:
        image, geometry = read_case(case.image_paths)
        if case.mask_path is not None:
            mask = read_mask(case.mask_path, geometry, case.image_paths[0])
            if not mask.any():
                return [f"{case.mask_path} is empty (no voxel > 0); a brain mask must cover the brain. Recompute it or remove the file."]
        elif not (image > 0).any():
            return [f"{case.image_paths[0]}: no voxel > 0 in any channel, so no brain mask can be derived; is the image blank?"]
        if case.label_path is not None:
            read_label(case.label_path, geometry, case.image_paths[0])
    except ImageFormatError as error:
        return [str(error)]
    return []
