"""Any folder of NIfTIs → raw dataset (``disyre_v2_convert_folder``).

Files are grouped into cases by name: with channel suffixes (``--channel_suffixes _t1 _t2``) the
case of ``sub01_t1.nii.gz`` is ``sub01``; without, every file is a one-channel case named by its
stem. Only the files directly inside the folder are read (subfolders are not searched): hospital
exports with one folder per patient are flattened first. Labels and masks are looked up by case name in their own folders (``CASE.nii[.gz]``, or the
case name followed by any one suffix such as ``CASE_seg.nii.gz`` when unambiguous).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Sequence

from disyre_v2.dataset_conversion.conversion_plan import write_cases
from disyre_v2.dataset_conversion.planned_case import PlannedCase
from disyre_v2.dataset_conversion.prepared_cases import prepared_cases
from disyre_v2.errors import UserError
from disyre_v2.imageio.names import NIFTI_ENDINGS, nifti_stem
from disyre_v2.paths import dataset_name, raw_folder
from disyre_v2.preparation import PREPARATION_FOLDER
from disyre_v2.preparation.prepare_folder import PreparationOptions, options_record

logger = logging.getLogger(__name__)

def group_channel_files(folder: Path, channel_suffixes: Sequence[str] | None) -> dict[str, list[Path]]:
    """``{case: [file per channel]}`` for the NIfTI files directly inside ``folder`` (not its subfolders)."""
    if not folder.is_dir():
        raise UserError("-i is not a folder", folder, "give the folder that holds the images")
    stems = {p: nifti_stem(p.name) for p in sorted(folder.iterdir()) if p.is_file()}
    stems = {p: s for p, s in stems.items() if s is not None}
    if not stems:
        nested = [p for p in folder.rglob("*") if p.is_file() and nifti_stem(p.name) is not None]
        if nested:
            raise UserError(f"no .nii or .nii.gz file directly in the folder; only subfolders hold some "
                            f"({len(nested)}, e.g. {nested[0].relative_to(folder)})", folder,
                            "disyre_v2_convert_folder reads the top level of -i only: put the images of all "
                            "cases side by side in one folder (one file per case and channel)")
        raise UserError("no .nii or .nii.gz file in the folder", folder,
                        "give the folder that holds the images (.nii or .nii.gz, one file per case and channel)")
    if not channel_suffixes:
        return {stem: [path] for path, stem in stems.items()}
    cases: dict[str, dict[int, Path]] = {}
    unmatched = []
    for path, stem in stems.items():
        # Longest suffix first, so "_t1ce" is not taken for "_t1" + "ce".
        for index, suffix in sorted(enumerate(channel_suffixes), key=lambda item: -len(item[1])):
            if stem.endswith(suffix) and len(stem) > len(suffix):
                cases.setdefault(stem[: -len(suffix)], {})[index] = path
                break
        else:
            unmatched.append(path.name)
    if unmatched:
        logger.warning("Ignored %d file(s) in %s matching none of the suffixes %s: %s",
                       len(unmatched), folder, list(channel_suffixes), ", ".join(unmatched[:5]))
    incomplete = {c: sorted(set(range(len(channel_suffixes))) - set(files)) for c, files in cases.items()}
    incomplete = {c: missing for c, missing in incomplete.items() if missing}
    if incomplete:
        details = "; ".join(
            f"{case}: no file {case}{''.join(channel_suffixes[i] for i in missing[:1])}.nii[.gz]"
            for case, missing in sorted(incomplete.items())[:10]
        )
        raise FileNotFoundError(f"{len(incomplete)} case(s) in {folder} lack a channel file: {details}.")
    if not cases:
        raise FileNotFoundError(f"No file in {folder} ends with one of the suffixes {list(channel_suffixes)}.")
    return {case: [files[i] for i in range(len(channel_suffixes))] for case, files in sorted(cases.items())}


def find_case_file(folder: Path, case_id: str) -> Path | None:
    """``CASE.nii[.gz]`` in ``folder``, else the single ``CASE<suffix>.nii[.gz]``; None if absent."""
    for ending in NIFTI_ENDINGS:
        exact = folder / f"{case_id}{ending}"
        if exact.is_file():
            return exact
    candidates = [p for p in folder.iterdir() if p.is_file() and p.name.startswith(case_id)
                  and nifti_stem(p.name) is not None
                  and not nifti_stem(p.name)[len(case_id):][:1].isalnum()]
    if len(candidates) > 1:
        raise ValueError(f"Several files in {folder} could belong to case {case_id}: "
                         f"{', '.join(p.name for p in candidates)}; name it {case_id}.nii.gz.")
    return candidates[0] if candidates else None


def check_same_preparation(dataset: Path, preparation: PreparationOptions | None) -> None:
    """Cases appended to ``dataset`` must be prepared as its cases were (template space or not, which
    template): training and test scans in different spaces would give meaningless maps."""
    if not dataset.is_dir():
        return  # the writer reports the missing dataset
    record = dataset / PREPARATION_FOLDER / "options.json"
    existing = json.loads(record.read_text()) if record.is_file() else None
    if existing is None and preparation is None:
        return
    if existing is None:
        raise UserError("the dataset's cases were converted without --prepare, these would be prepared onto "
                        f"{preparation.template}", dataset,
                        "drop --prepare (and its flags) when the scans are already in the dataset's space, or "
                        "convert every case with --prepare (--overwrite the first conversion)")
    if preparation is None:
        raise UserError(f"the dataset's cases were prepared onto {existing.get('template')} (--prepare), these "
                        "would be added unprepared", dataset,
                        f"add the first conversion's flags: --prepare --template {existing.get('template')} "
                        f"--skull_strip ... (recorded in {record})")
    new = options_record(preparation)
    for key in ("template", "template_mask"):
        if existing.get(key) != new[key]:
            raise UserError(f"the dataset's cases were prepared with --{key} {existing.get(key)}, these would be "
                            f"prepared with --{key} {new[key]}", dataset,
                            f"prepare every case of a dataset onto one template (recorded in {record})")
    for key in ("skull_strip", "bias_correction"):
        if existing.get(key) != new[key]:
            logger.warning("The dataset's cases were prepared with %s=%s, these with %s=%s (%s).",
                           key, existing.get(key), key, new[key], record)


def convert_folder(
    images: Path | str,
    dataset_id: int,
    role: str,
    *,
    name: str = "Folder",
    labels: Path | str | None = None,
    masks: Path | str | None = None,
    channel_suffixes: Sequence[str] | None = None,
    channel_names: Sequence[str] | None = None,
    overwrite: bool = False,
    append: bool = False,
    raw_base: Path | str | None = None,
    preparation: PreparationOptions | None = None,
    num_processes: int = 0,
) -> Path:
    """Convert a folder of NIfTIs into ``DatasetNNN_Name``; returns the dataset folder.

    ``role`` "train" puts the cases into imagesTr (healthy only), "test" into imagesTs. ``append``
    adds the cases to an existing dataset of the same name (e.g. test cases after training cases).
    With ``preparation``, the cases are prepared onto the template first (see prepared_cases).
    """
    if role not in ("train", "test"):
        raise ValueError(f"--role must be 'train' or 'test', got {role!r}.")
    if labels is not None and role == "train":
        raise ValueError("Labels belong to test cases: training cases are healthy. Use --role test with --labels.")
    images = Path(images)
    cases = group_channel_files(images, channel_suffixes)
    n_channels = len(channel_suffixes) if channel_suffixes else 1
    if channel_names is None:
        channel_names = [s.strip("_-.") or f"channel{i}" for i, s in enumerate(channel_suffixes)] if channel_suffixes else ["image"]
    if len(channel_names) != n_channels:
        raise ValueError(f"{len(channel_names)} channel name(s) for {n_channels} channel(s); give one per suffix.")
    for option, folder in (("--labels", labels), ("--masks", masks)):
        if folder is not None and not Path(folder).is_dir():
            raise FileNotFoundError(f"{option} {folder} is not a folder.")

    # Resolve every file before writing anything, so a missing one is reported at once.
    masks_of = {c: find_case_file(Path(masks), c) for c in cases} if masks is not None else {}
    labels_of = {c: find_case_file(Path(labels), c) for c in cases} if labels is not None else {}
    for option, found, example in (("--masks", masks_of, "mask"), ("--labels", labels_of, "label")):
        missing = sorted(c for c, path in found.items() if path is None)
        if missing:
            raise FileNotFoundError(
                f"No {example} in {masks if option == '--masks' else labels} for {len(missing)} case(s): "
                f"{', '.join(missing[:10])} (expected CASE.nii.gz). Give one for every case or drop {option}."
            )

    base = Path(raw_base) if raw_base is not None else raw_folder()
    if append:
        check_same_preparation(base / dataset_name(dataset_id, name), preparation)

    planned = [PlannedCase(case_id, "Tr" if role == "train" else "Ts", tuple(files),
                           label_file=labels_of.get(case_id), mask_file=masks_of.get(case_id))
               for case_id, files in cases.items()]
    if preparation is None:
        return write_cases(planned, dataset_id, name, channel_names, overwrite=overwrite, append=append,
                           description=f"Converted from {images}", raw_base=raw_base)
    with prepared_cases(planned, preparation, base, num_processes=num_processes) as (prepared, records):
        return write_cases(prepared, dataset_id, name, channel_names, overwrite=overwrite, append=append,
                           description=f"Converted from {images}, prepared onto {preparation.template}",
                           raw_base=raw_base, preparation_records=records)
