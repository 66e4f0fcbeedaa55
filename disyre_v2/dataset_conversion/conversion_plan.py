"""What the public-dataset converters share: the list of cases to write, how missing files are
reported, subject-id list files, and writing the cases through :class:`RawDatasetWriter`.

Each converter first finds every file and checks that nothing is missing (no output is created
then), and only then copies the cases; a failure while copying leaves nothing behind because the
writer works in a staging folder that is renamed into place at the very end.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

from tqdm import tqdm

from disyre_v2.dataset_conversion.planned_case import PlannedCase
from disyre_v2.dataset_conversion.raw_dataset_writer import RawDatasetWriter

if TYPE_CHECKING:
    from disyre_v2.preparation.prepare_folder import PreparationOptions

logger = logging.getLogger(__name__)

# Long listings are cut: the first lines say what is wrong, the count says how much.
MAX_LISTED = 30


class MissingFilesError(FileNotFoundError):
    """Expected files of some cases are absent; the message lists them."""


def select_modalities(requested: Sequence[str], known: Iterable[str], canonical: Callable[[str], str],
                      dataset: str) -> list[str]:
    """The requested modalities as known keys (``canonical`` maps any spelling to a key), in the
    given order without repeats; an unknown or empty request raises ValueError listing the choices."""
    known = list(known)
    result = []
    for modality in requested:
        key = canonical(modality)
        if key not in known:
            raise ValueError(f"Unknown {dataset} modality {modality!r}: choose from {', '.join(known)}.")
        if key not in result:
            result.append(key)
    if not result:
        raise ValueError(f"Give at least one modality ({', '.join(known)}).")
    return result


def expected_name(folder: Path | None, stem: str) -> str:
    """How a missing file is named in messages: its folder when known, both endings allowed."""
    name = f"{stem}.nii[.gz]"
    return str(folder / name) if folder is not None else name


def listing(lines: Sequence[str]) -> str:
    shown = [f"  - {line}" for line in lines[:MAX_LISTED]]
    if len(lines) > MAX_LISTED:
        shown.append(f"  ... and {len(lines) - MAX_LISTED} more")
    return "\n".join(shown)


def handle_missing(missing: dict[str, list[str]], root: Path, skip_incomplete: bool) -> set[str]:
    """Raise :class:`MissingFilesError` naming every missing file, or, with ``skip_incomplete``,
    warn and return the case keys to leave out."""
    if not missing:
        return set()
    lines = [f"{case}: {name}" for case, names in sorted(missing.items()) for name in names]
    if not skip_incomplete:
        raise MissingFilesError(
            f"{len(lines)} expected file(s) of {len(missing)} case(s) are missing under {root}:\n{listing(lines)}\n"
            f"Add the files, or pass --skip_incomplete to convert only the complete cases."
        )
    logger.warning("Skipping %d incomplete case(s) (--skip_incomplete); missing file(s):\n%s", len(missing), listing(lines))
    return set(missing)


def read_id_list(path: Path | str, option: str) -> list[str]:
    """Subject ids from a text file: separated by new lines, commas, tabs or spaces; ``#`` starts a
    comment. Order is kept, duplicates dropped."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{option} {path} does not exist: give a text file with one subject id per line.")
    ids: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        for token in line.split("#", 1)[0].replace(",", " ").split():
            if token not in ids:
                ids.append(token)
    if not ids:
        raise ValueError(f"{option} {path} holds no subject id (one per line expected).")
    return ids


def write_planned_cases(
    cases: Sequence[PlannedCase],
    dataset_id: int,
    name: str,
    channel_names: Sequence[str],
    *,
    overwrite: bool,
    description: str,
    labels: dict[str, int] | None = None,
    raw_base: Path | str | None = None,
    progress_label: str = "converting",
    preparation: "PreparationOptions | None" = None,
    num_processes: int = 0,
    skip_incomplete: bool = False,
    **dataset_json_extra,
) -> Path:
    """Copy the cases into ``DatasetNNN_Name`` (all or nothing); returns the dataset folder. With
    ``preparation``, the cases are first prepared onto the template (see prepared_cases)."""
    if not cases:
        raise ValueError("No case to convert: every case was excluded or skipped; nothing was written.")
    if preparation is None:
        return write_cases(cases, dataset_id, name, channel_names, overwrite=overwrite, description=description,
                           labels=labels, raw_base=raw_base, progress_label=progress_label, **dataset_json_extra)
    # Imported here: preparation (registration, QA figures) is loaded only by --prepare.
    from disyre_v2.dataset_conversion.prepared_cases import prepared_cases
    from disyre_v2.paths import raw_folder

    base = Path(raw_base) if raw_base is not None else raw_folder()
    with prepared_cases(cases, preparation, base, num_processes=num_processes,
                        skip_incomplete=skip_incomplete) as (prepared, records):
        if not prepared:
            raise ValueError("No case could be prepared; nothing was written.")
        description = f"{description} Prepared onto {preparation.template} (skull stripping: {preparation.skull_strip})."
        return write_cases(prepared, dataset_id, name, channel_names, overwrite=overwrite, description=description,
                           labels=labels, raw_base=raw_base, progress_label=progress_label,
                           preparation_records=records, **dataset_json_extra)


def write_cases(cases: Sequence[PlannedCase], dataset_id: int, name: str, channel_names: Sequence[str], *,
                overwrite: bool = False, append: bool = False, description: str = "",
                labels: dict[str, int] | None = None, raw_base: Path | str | None = None,
                progress_label: str = "converting", preparation_records: Path | None = None,
                **dataset_json_extra) -> Path:
    """The cases (their files as they are) into ``DatasetNNN_Name`` through :class:`RawDatasetWriter`,
    with a ``preparation/`` folder copied in when given."""
    with RawDatasetWriter(dataset_id, name, channel_names, overwrite=overwrite, append=append,
                          description=description, labels=labels, raw_base=raw_base, **dataset_json_extra) as writer:
        for case in tqdm(cases, desc=progress_label, unit="case"):
            if case.split == "Tr":
                writer.add_training_case(case.case_id, case.channel_files, case.mask_file)
            else:
                writer.add_test_case(case.case_id, case.channel_files, case.label_file, case.mask_file)
        if preparation_records is not None:
            from disyre_v2.dataset_conversion.prepared_cases import copy_preparation_records

            copy_preparation_records(preparation_records, writer.staging)
    return writer.target
