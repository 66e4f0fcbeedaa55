"""The three base folders of the pipeline and the resolution of dataset identifiers.

``DISYRE_raw`` holds converted datasets, ``DISYRE_preprocessed`` the planned and preprocessed
ones, ``DISYRE_results`` the trained model folders. A dataset is named ``DatasetNNN_Name``; on the
command line ``-d 1``, ``-d 001`` and ``-d Dataset001_Name`` all designate it.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from disyre_v2.errors import UserError

RAW_ENV = "DISYRE_raw"
PREPROCESSED_ENV = "DISYRE_preprocessed"
RESULTS_ENV = "DISYRE_results"

DATASET_NAME_PATTERN = re.compile(r"^Dataset(\d{3})_([A-Za-z0-9][A-Za-z0-9_\-]*)$")


class MissingEnvironmentVariable(RuntimeError):
    """A base folder variable is not set."""


class DatasetNotFoundError(LookupError):
    """A dataset identifier matches no dataset, or more than one."""


def _base_folder(variable: str) -> Path:
    value = os.environ.get(variable)
    if not value:
        raise MissingEnvironmentVariable(
            f"The environment variable {variable} is not set. disyre_v2 keeps its data in three "
            f"folders; set them before running, for example:\n"
            f"    export {RAW_ENV}=/data/disyre/raw\n"
            f"    export {PREPROCESSED_ENV}=/data/disyre/preprocessed\n"
            f"    export {RESULTS_ENV}=/data/disyre/results\n"
            f"(see documentation/getting_started.md)."
        )
    return Path(value)


def writable_folder(path: Path | str, what: str) -> Path:
    """A folder that exists (or is made now) and is writable; otherwise a UserError naming it. Called
    before any long work, so a bad output never surfaces after hours of computing."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{what} must be a folder, but it is a file", path, "give a folder path")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"{what} cannot be created ({error.strerror})", path, "choose a folder you can write to") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"{what} is not writable", path, "choose a folder you can write to")
    return path


def writable_file(path: Path | str, what: str) -> Path:
    """A file path that is no folder and whose folder exists (or is made now) and is writable."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{what} must be a file, but it is a folder", path, "give a file path")
    writable_folder(path.parent, f"the folder of {what}")
    return path


def raw_folder() -> Path:
    """``$DISYRE_raw``: converted raw datasets."""
    return _base_folder(RAW_ENV)


def preprocessed_folder() -> Path:
    """``$DISYRE_preprocessed``: fingerprints, plans and preprocessed arrays."""
    return _base_folder(PREPROCESSED_ENV)


def results_folder() -> Path:
    """``$DISYRE_results``: trained model folders."""
    return _base_folder(RESULTS_ENV)


def dataset_name(dataset_id: int, name: str) -> str:
    """``DatasetNNN_Name`` for an integer id (0..999) and a short name."""
    if not 0 <= int(dataset_id) <= 999:
        raise ValueError(f"Dataset ids run from 0 to 999, got {dataset_id}.")
    full = f"Dataset{int(dataset_id):03d}_{name}"
    if not DATASET_NAME_PATTERN.match(full):
        raise ValueError(
            f"Invalid dataset name {name!r}: use letters, digits, '_' and '-' only, "
            f"starting with a letter or digit."
        )
    return full


def parse_dataset_id(identifier: str | int) -> int | str:
    """The integer id of ``1``/``"001"``, or the full name when given ``Dataset001_Name``."""
    text = str(identifier).strip()
    if text.isdigit():
        return int(text)
    if DATASET_NAME_PATTERN.match(text):
        return text
    raise DatasetNotFoundError(
        f"{identifier!r} is not a dataset identifier: give a number (1, 001) or a full name "
        f"such as Dataset001_CamCAN."
    )


def existing_datasets(*bases: Path) -> list[str]:
    """Sorted names of the ``DatasetNNN_Name`` folders found in the given base folders."""
    names: set[str] = set()
    for base in bases:
        if base.is_dir():
            names.update(p.name for p in base.iterdir() if p.is_dir() and DATASET_NAME_PATTERN.match(p.name))
    return sorted(names)


def resolve_dataset_name(identifier: str | int, bases: list[Path] | None = None) -> str:
    """The full ``DatasetNNN_Name`` designated by ``identifier``.

    Numbers are looked up in ``bases`` (default: the raw, preprocessed and results folders that are
    set). A full name is returned as given once it is found. Unknown or ambiguous identifiers raise
    :class:`DatasetNotFoundError` listing the datasets that exist.
    """
    if bases is None:
        bases = []
        for getter in (raw_folder, preprocessed_folder, results_folder):
            try:
                bases.append(getter())
            except MissingEnvironmentVariable:
                pass
        if not bases:
            raw_folder()  # raises the helpful message about the variables
    parsed = parse_dataset_id(identifier)
    known = existing_datasets(*bases)
    listing = ", ".join(known) if known else "none"
    where = ", ".join(str(b) for b in bases)
    if isinstance(parsed, str):
        if parsed in known:
            return parsed
        raise DatasetNotFoundError(f"Dataset {parsed} not found in {where}. Existing datasets: {listing}.")
    matches = [n for n in known if int(DATASET_NAME_PATTERN.match(n).group(1)) == parsed]
    if not matches:
        raise DatasetNotFoundError(
            f"No dataset with id {parsed:03d} in {where}. Existing datasets: {listing}. "
            f"Convert one first (disyre_v2_convert_* or disyre_v2_make_synthetic_dataset)."
        )
    if len(matches) > 1:
        raise DatasetNotFoundError(
            f"Dataset id {parsed:03d} is ambiguous: {', '.join(matches)}. Give the full name with -d, "
            f"or remove the stale folder."
        )
    return matches[0]


def dataset_id_of(name: str) -> int:
    """The integer id of a full ``DatasetNNN_Name``."""
    match = DATASET_NAME_PATTERN.match(name)
    if not match:
        raise ValueError(f"{name!r} is not of the form DatasetNNN_Name.")
    return int(match.group(1))
