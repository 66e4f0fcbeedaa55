"""Find the files of a public dataset in a downloaded tree, wherever they sit in it.

Public datasets reach users in many shapes (the official archive, an uncompressed copy, a flat
folder of derivatives next to the BIDS tree), so converters never hard-code folder levels: they
index every NIfTI under the root once and pick files by the end of their name (the suffix before
``.nii``/``.nii.gz``), keyed by the subject or case id that the rest of the name holds.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from disyre_v2.imageio.names import nifti_stem

logger = logging.getLogger(__name__)

class DuplicateFilesError(ValueError):
    """Two files in the tree claim the same role for the same case (e.g. a .nii and a .nii.gz copy)."""


@dataclass(frozen=True)
class NiftiFile:
    path: Path
    stem: str  # file name without .nii / .nii.gz


def require_folder(root: Path | str, what: str = "-i") -> Path:
    """``root`` as a Path; a clear error when it is not an existing folder."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"{what} {root} is not a folder: give the folder that holds the downloaded dataset.")
    return root


def index_niftis(root: Path | str) -> list[NiftiFile]:
    """Every NIfTI under ``root`` (recursively, following folder links once), sorted by path.

    Hidden files and folders are skipped: macOS leaves ``._name.nii.gz`` resource files next to real
    images when data is copied from its file systems, and they are not images.
    """
    root = require_folder(root)
    found: list[NiftiFile] = []
    seen_dirs: set[str] = set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen_dirs:  # a link back up the tree
            dirs[:] = []
            continue
        seen_dirs.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            stem = nifti_stem(name)
            if stem is not None and not name.startswith("."):
                found.append(NiftiFile(Path(folder) / name, stem))
    found.sort(key=lambda f: str(f.path))
    logger.debug("Found %d NIfTI file(s) under %s.", len(found), root)
    return found


def find_by_suffix(
    files: Iterable[NiftiFile],
    suffix: str,
    key_of: Callable[[str], str | None],
) -> dict[str, Path]:
    """``{key: path}`` for the files whose stem ends with ``suffix`` (case-insensitive).

    ``key_of`` receives the part of the stem before the suffix and returns the case key, or None
    for files that belong to no case (they are ignored). Two files with one key raise
    :class:`DuplicateFilesError` naming both.
    """
    suffix_lower = suffix.lower()
    result: dict[str, Path] = {}
    for nifti in files:
        if not nifti.stem.lower().endswith(suffix_lower) or len(nifti.stem) == len(suffix):
            continue
        key = key_of(nifti.stem[: -len(suffix)])
        if key is None:
            continue
        if key in result:
            raise DuplicateFilesError(
                f"Two files are '{suffix}' of {key}: {result[key]} and {nifti.path}. Keep one copy "
                f"(e.g. delete the uncompressed duplicate), or point -i at one copy of the dataset."
            )
        result[key] = nifti.path
    return result


def key_matcher(pattern: str, group: int | str = 1) -> Callable[[str], str | None]:
    """A ``key_of`` for :func:`find_by_suffix`: the regex must match the whole prefix."""
    compiled = re.compile(pattern)

    def key_of(prefix: str) -> str | None:
        match = compiled.fullmatch(prefix)
        return match.group(group) if match else None

    return key_of


def is_under_folder_named(path: Path, root: Path, folder_name: str) -> bool:
    """True when a folder between ``root`` and ``path`` is called ``folder_name`` (case-insensitive)."""
    try:
        parts = path.relative_to(root).parts[:-1]
    except ValueError:
        parts = path.parts[:-1]
    return any(part.lower() == folder_name.lower() for part in parts)
