"""File names of the raw layout: imagesTr/CASE_0000.nii.gz, masksTr/CASE.nii.gz, labelsTs/CASE.nii.gz."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from disyre_v2.errors import UserError

# Case names become file names everywhere downstream: keep them portable.
CASE_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")
SPLITS = ("Tr", "Ts")


@dataclass(frozen=True)
class RawCase:
    case_id: str
    image_paths: tuple[Path, ...]  # one per channel, in channel order
    mask_path: Path | None
    label_path: Path | None


def is_safe_case_name(name: str) -> bool:
    return bool(CASE_NAME_PATTERN.match(name)) and not name.endswith("_mask")


def channel_file_name(case_id: str, channel: int, file_ending: str = ".nii.gz") -> str:
    return f"{case_id}_{channel:04d}{file_ending}"


def split_channel_file_name(file_name: str, file_ending: str) -> tuple[str, int] | None:
    """``("CASE", 0)`` for ``CASE_0000<ending>``, None for names that do not follow the pattern."""
    if not file_name.endswith(file_ending):
        return None
    stem = file_name[: -len(file_ending)]
    match = re.match(r"^(.+)_(\d{4})$", stem)
    if not match:
        return None
    return match.group(1), int(match.group(2))


def case_ids_in(images_folder: Path, file_ending: str) -> list[str]:
    """Sorted unique case ids of the channel files in an images folder."""
    if not images_folder.is_dir():
        return []
    ids = set()
    for path in images_folder.iterdir():
        parsed = split_channel_file_name(path.name, file_ending)
        if parsed:
            ids.add(parsed[0])
    return sorted(ids)


def check_channel_files(images_folder: Path, file_ending: str, n_channels: int) -> None:
    """Every channel file's index is one that dataset.json declares (a cheap listing, always done): an
    undeclared CASE_0002 file would otherwise be dropped without a word."""
    if not images_folder.is_dir():
        return
    for path in sorted(images_folder.iterdir()):
        parsed = split_channel_file_name(path.name, file_ending)
        if parsed is not None and parsed[1] >= n_channels:
            raise UserError(
                f"channel file {path.name} has channel index {parsed[1]}, but dataset.json declares "
                f"{n_channels} channel(s)", path,
                f"add the channel to channel_names in {images_folder.parent / 'dataset.json'}, or remove the file")


def list_raw_cases(dataset_folder: Path | str, split: str, dataset_json: dict) -> list[RawCase]:
    """The cases of one split ("Tr" or "Ts") with their channel, mask and label paths.

    Mask and label paths are given when the file exists; the integrity check enforces that they
    exist where dataset.json declares them.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    folder = Path(dataset_folder)
    ending = dataset_json["file_ending"]
    n_channels = len(dataset_json["channel_names"])
    check_channel_files(folder / f"images{split}", ending, n_channels)
    cases = []
    for case_id in case_ids_in(folder / f"images{split}", ending):
        images = tuple(folder / f"images{split}" / channel_file_name(case_id, c, ending) for c in range(n_channels))
        mask = folder / f"masks{split}" / f"{case_id}{ending}"
        label = folder / "labelsTs" / f"{case_id}{ending}"
        cases.append(
            RawCase(
                case_id=case_id,
                image_paths=images,
                mask_path=mask if mask.is_file() else None,
                label_path=label if split == "Ts" and label.is_file() else None,
            )
        )
    return cases
