"""What disyre_v2_prepare reads and writes: a raw-layout dataset or a flat folder of case files in,
the same layout on the template out.

Input, either
- a raw-layout folder (``imagesTr/``, ``imagesTs/``, optional ``masksTr/``, ``masksTs/``,
  ``labelsTs/``, ``dataset.json``): the output has the same folders, masks for every case and a
  ``dataset.json`` with the prepared cases (ready for planning when OUT lies in $DISYRE_raw); or
- a flat folder of ``CASE_0000.nii[.gz]`` (``CASE_0001`` ...) files, with optional ``masks/`` and
  ``labels/`` subfolders of ``CASE.nii[.gz]``: the output is ``OUT/CASE_0000.nii.gz`` ... with
  ``OUT/masks/`` and ``OUT/labels/``.
Both get ``OUT/preparation/`` (per case transform, QA figure and record) and
``OUT/preparation/options.json``.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Sequence

from disyre_v2.dataset.dataset_json import write_json_atomic
from disyre_v2.dataset.layout import case_ids_in, split_channel_file_name
from disyre_v2.errors import UserError
from disyre_v2.imageio.atomic import remove_stale_temporaries
from disyre_v2.paths import writable_folder
from disyre_v2.preparation import PREPARATION_FOLDER
from disyre_v2.preparation.prepare_folder import (
    CaseJob,
    PreparationFailed,
    PreparationOptions,
    PreparationResult,
    check_template,
    failure_summary,
    options_record,
    prepare_cases,
)

SPLITS = ("Tr", "Ts")
logger = logging.getLogger(__name__)


def _ending(folder: Path) -> str:
    return ".nii.gz" if any(p.name.endswith(".nii.gz") for p in folder.iterdir()) else ".nii"


def _optional(folder: Path, case_id: str) -> Path | None:
    for ending in (".nii.gz", ".nii"):
        if (folder / f"{case_id}{ending}").is_file():
            return folder / f"{case_id}{ending}"
    return None


def _channel_files(folder: Path, case_id: str, ending: str) -> tuple[Path, ...]:
    parsed = (split_channel_file_name(p.name, ending) for p in folder.iterdir())
    indices = sorted(channel for case, channel in filter(None, parsed) if case == case_id)
    if indices != list(range(len(indices))):
        raise UserError(f"case {case_id} has channel files {indices}, not 0..{len(indices) - 1}", folder,
                        "name the channels CASE_0000, CASE_0001, ... without gaps")
    return tuple(folder / f"{case_id}_{i:04d}{ending}" for i in indices)


def is_raw_layout(folder: Path) -> bool:
    return any((folder / f"images{split}").is_dir() for split in SPLITS)


def plan_jobs(input_folder: Path, output_folder: Path) -> list[CaseJob]:
    """One job per case of ``input_folder``, writing to the same layout under ``output_folder``."""
    if not input_folder.is_dir():
        what = "the input is a file, not a folder" if input_folder.exists() else "the input folder does not exist"
        raise UserError(what, input_folder,
                        "give a folder of CASE_0000.nii.gz files or a raw dataset (imagesTr/, imagesTs/)")
    if output_folder.resolve() == input_folder.resolve():
        raise UserError("the output folder is the input folder", output_folder, "give another -o")
    preparation = output_folder / PREPARATION_FOLDER
    jobs = []
    if is_raw_layout(input_folder):
        for split in SPLITS:
            images = input_folder / f"images{split}"
            if not images.is_dir():
                continue
            ending = _ending(images)
            for case_id in case_ids_in(images, ending):
                jobs.append(CaseJob(
                    case_id, _channel_files(images, case_id, ending), output_folder / f"images{split}",
                    output_folder / f"masks{split}", preparation,
                    mask_file=_optional(input_folder / f"masks{split}", case_id),
                    label_file=_optional(input_folder / "labelsTs", case_id) if split == "Ts" else None,
                    labels_out=output_folder / "labelsTs" if split == "Ts" else None))
    else:
        ending = _ending(input_folder)
        for case_id in case_ids_in(input_folder, ending):
            jobs.append(CaseJob(
                case_id, _channel_files(input_folder, case_id, ending), output_folder, output_folder / "masks",
                preparation, mask_file=_optional(input_folder / "masks", case_id),
                label_file=_optional(input_folder / "labels", case_id), labels_out=output_folder / "labels"))
    if not jobs:
        raise UserError("no case found", input_folder,
                        "name the files CASE_0000.nii.gz (one per channel), in the folder or in imagesTr/ and imagesTs/")
    channel_counts = {len(job.channel_files) for job in jobs}
    if len(channel_counts) > 1:
        raise UserError(f"the cases have different numbers of channels ({sorted(channel_counts)})", input_folder,
                        "give every case the same channels")
    return jobs


def write_prepared_dataset_json(input_folder: Path, output_folder: Path, result: PreparationResult,
                                options: PreparationOptions, channels: list[str] | None = None) -> Path | None:
    """dataset.json of a raw-layout output, counting the prepared cases: the input's, or, without one,
    a new one when the channels are named (--channels)."""
    source = input_folder / "dataset.json"
    if not is_raw_layout(input_folder) or (not source.is_file() and channels is None):
        return None
    data = (json.loads(source.read_text()) if source.is_file() else
            {"name": output_folder.name.split("_", 1)[-1], "description": f"prepared from {input_folder}",
             "channel_names": {str(i): name for i, name in enumerate(channels)}, "labelsTs": False})
    prepared = {record["case_id"] for record in result.prepared}
    cases = {split: [case for case in case_ids_in(output_folder / f"images{split}", ".nii.gz") if case in prepared]
             for split in SPLITS}
    if not source.is_file():
        data["labelsTs"] = bool(cases["Ts"]) and all((output_folder / "labelsTs" / f"{c}.nii.gz").is_file()
                                                      for c in cases["Ts"])
    # Every prepared case has a brain mask now; labels stay as the input declared them.
    data.update({"file_ending": ".nii.gz", "numTraining": len(cases["Tr"]), "numTest": len(cases["Ts"]),
                 "masksTr": bool(cases["Tr"]), "masksTs": bool(cases["Ts"]), "preparation": options_record(options)})
    return write_json_atomic(data, output_folder / "dataset.json")


def channel_names(input_folder: Path, jobs: list[CaseJob], channels: Sequence[str] | None) -> list[str] | None:
    """The channel names (CASE_0000 first): ``--channels``, checked against the files and against the
    input's dataset.json, or the dataset.json's own."""
    count = len(jobs[0].channel_files)
    if channels is not None and len(channels) != count:
        raise UserError(f"--channels names {len(channels)} channel(s) but the cases have {count} "
                        f"(CASE_0000 ... CASE_{count - 1:04d})", input_folder, "give one name per channel file")
    source = input_folder / "dataset.json"
    if not source.is_file():
        return list(channels) if channels is not None else None
    names = json.loads(source.read_text()).get("channel_names", {})
    declared = [names[str(i)] for i in range(len(names))]
    if channels is not None and list(channels) != declared:
        raise UserError(f"--channels {' '.join(channels)} differs from the channels of dataset.json "
                        f"({' '.join(declared)})", source, "drop --channels, or give the dataset's channel names")
    return declared


def prepare_dataset(input_folder: Path | str, output_folder: Path | str, options: PreparationOptions, *,
                    num_processes: int = 0, resume: bool = False, channels: Sequence[str] | None = None
                    ) -> PreparationResult:
    """Prepare every case of ``input_folder`` into ``output_folder``; raises PreparationFailed listing
    the failed cases after the others are written. ``channels`` names the channel files in order
    (recorded in options.json; with a raw-layout input that has no dataset.json, one is written)."""
    input_folder, output_folder = Path(input_folder), Path(output_folder)
    jobs = plan_jobs(input_folder, output_folder)
    names = channel_names(input_folder, jobs, channels)
    record = {**options_record(options), "channels": names}
    options_file = output_folder / PREPARATION_FOLDER / "options.json"
    if resume and options_file.is_file() and json.loads(options_file.read_text()) != record:
        raise UserError("--continue with other preparation options than the cases already prepared", options_file,
                        "run with the options in that file, or prepare into a new folder")
    # Everything is checked before the first write: a refused run leaves no OUT (nor options.json in it).
    check_template(options)
    writable_folder(output_folder, "-o")
    options_file.parent.mkdir(parents=True, exist_ok=True)
    # Files half-written by a run that was killed go now (their cases are prepared again).
    for stale in remove_stale_temporaries(output_folder, recursive=True):
        logger.info("Removed %s, left by an interrupted run.", stale)
    write_json_atomic(record, options_file)
    result = prepare_cases(jobs, options, num_processes, resume=resume)
    write_prepared_dataset_json(input_folder, output_folder, result, options, names)
    if result.failed:
        raise PreparationFailed(failure_summary(result.failed, len(jobs)), input_folder,
                                "fix or remove those scans and run again with --continue")
    return result
