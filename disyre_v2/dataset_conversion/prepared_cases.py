"""Converters' --prepare: the planned cases are first brought onto the template (disyre_v2_prepare's
steps) in a hidden work folder beside the dataset, and the prepared files are what gets converted.

The work folder also holds ``preparation/`` (per case transform, QA figure and record), which the
converter copies into the dataset, so ``disyre_v2_predict --native_space $DISYRE_raw/DatasetNNN_Name``
finds it. A case that cannot be prepared stops the conversion with the list of failures (nothing is
written), or, with --skip_incomplete, is left out with a warning.
"""
from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from disyre_v2.dataset_conversion.planned_case import PlannedCase
from disyre_v2.preparation import PREPARATION_FOLDER
from disyre_v2.preparation.prepare_folder import (
    FILE_ENDING,
    CaseJob,
    PreparationFailed,
    PreparationOptions,
    failure_summary,
    options_record,
    prepare_cases,
)
from disyre_v2.dataset.dataset_json import write_json_atomic

logger = logging.getLogger(__name__)


@contextmanager
def prepared_cases(cases: Sequence[PlannedCase], options: PreparationOptions, work_base: Path, *,
                   num_processes: int = 0, skip_incomplete: bool = False) -> Iterator[tuple[list[PlannedCase], Path]]:
    """(the cases with their prepared files, the preparation/ folder); the work folder is removed after."""
    work_base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".disyre-prepare-", dir=work_base))
    try:
        jobs = [CaseJob(case.case_id, tuple(case.channel_files), work / case.split / "images",
                        work / case.split / "masks", work / PREPARATION_FOLDER, mask_file=case.mask_file,
                        label_file=case.label_file, labels_out=work / case.split / "labels")
                for case in cases]
        result = prepare_cases(jobs, options, num_processes, progress_label="preparing")
        if result.failed:
            summary = failure_summary(result.failed, len(jobs))
            if not skip_incomplete:
                raise PreparationFailed(summary, None, "fix or remove those scans, or pass --skip_incomplete to "
                                        "convert the others; nothing was written")
            logger.warning("%s\nThey are left out (--skip_incomplete).", summary)
        write_json_atomic(options_record(options), work / PREPARATION_FOLDER / "options.json")
        prepared = []
        for case, job in zip(cases, jobs):
            if case.case_id in result.failed:
                continue
            label = job.labels_out / f"{case.case_id}{FILE_ENDING}" if case.label_file is not None else None
            prepared.append(dataclasses.replace(
                case, channel_files=tuple(job.images_out / f"{case.case_id}_{c:04d}{FILE_ENDING}"
                                          for c in range(len(case.channel_files))),
                mask_file=job.masks_out / f"{case.case_id}{FILE_ENDING}", label_file=label))
        yield prepared, work / PREPARATION_FOLDER
    finally:
        shutil.rmtree(work, ignore_errors=True)


def copy_preparation_records(source: Path, dataset_staging: Path) -> None:
    """The preparation/ folder into the dataset being written."""
    shutil.copytree(source, dataset_staging / PREPARATION_FOLDER, dirs_exist_ok=True)
