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

from disyre_v2.dataset.dataset_json import write_json_atomic
from disyre_v2.dataset.layout import case_ids_in, split_channel_file_name
from disyre_v2.errors import UserError
from disyre_v2.imageio.atomic import remove_stale_temporaries
from disyre_v2.preparation import PREPARATION_FOLDER
from disyre_v2.preparation.prepare_folder import (
    CaseJob,
    PreparationFailed,
    PreparationOptions,
    PreparationResult,
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
                                options: PreparationOptions) -> Path | None:
    """dataset.json of the output (raw layout with a dataset.json only), counting the prepared cases."""
    source = input_folder / "dataset.json"
    if not source.is_file():
        return None
    data = json.loads(source.read_text())
    prepared = {record["case_id"] for record in result.prepared}
    counts = {split: sum(1 for case in case_ids_in(output_folder / f"images{split}", ".nii.gz") if case in prepared)
              for split in SPLITS}
    # Every prepared case has a brain mask now; labels stay as the input declared them.
    data.update({"file_ending": ".nii.gz", "numTraining": counts["Tr"], "numTest": counts["Ts"],
                 "masksTr": counts["Tr"] > 0, "masksTs": counts["Ts"] > 0, "preparation": options_record(options)})
    return write_json_atomic(data, output_folder / "dataset.json")


def prepare_dataset(input_folder: Path | str, output_folder: Path | str, options: PreparationOptions, *,
                    num_processes: int = 0, resume: bool = False) -> PreparationResult:
    """Prepare every case of ``input_folder`` into ``output_folder``; raises PreparationFailed listing
    the failed cases after the others are written."""
    input_folder, output_folder = Path(input_folder), Path(output_folder)
    jobs = plan_jobs(input_folder, output_folder)
    options_file = output_folder / PREPARATION_FOLDER / "options.json"
    if resume and options_file.is_file() and json.loads(options_file.read_text()) != options_record(options):
        raise UserError("--continue with other preparation options than the cases already prepared", options_file,
                        "run with the options in that file, or prepare into a new folder")
    options_file.parent.mkdir(parents=True, exist_ok=True)
    # Files half-written by a run that was killed go now (their cases are prepared again).
    for stale in remove_stale_temporaries(output_folder, recursive=True):
        logger.info("Removed %s, left by an interrupted run.", stale)
    write_json_atomic(options_record(options), options_file)
    result = prepare_cases(jobs, options, num_processes, resume=resume)
    write_prepared_dataset_json(input_folder, output_folder, result, options)
    if result.failed:
        raise PreparationFailed(failure_summary(result.failed, len(jobs)), input_folder,
                                "fix or remove those scans and run again with --continue")
    return result
