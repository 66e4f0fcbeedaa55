"""Prepare many cases: each case's files onto the template, in parallel, with a progress bar; a case
that fails is named with its reason while the others go on.

Every case writes its channel files, brain mask, label (test cases) and, in ``preparation/``, its
forward transform ``CASE.tfm`` (ITK format: template point → native point of the first channel),
its QA figure ``CASE_qa.png`` and ``CASE.json`` (source files, the native grid, registration
quality). All of a case's files are written under temporary names and renamed together at the end,
``CASE.json`` last: a case with a ``CASE.json`` is complete, and a failed case leaves nothing.
"""
from __future__ import annotations

import functools
import json
import logging
import os
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import SimpleITK as sitk
from tqdm import tqdm

from disyre_v2.errors import UserError
from disyre_v2.imageio.atomic import atomic_path
from disyre_v2.imageio.errors import ImageFormatError, itk_reason
from disyre_v2.imageio.geometry import Geometry
from disyre_v2.processes.background import background_pool
from disyre_v2.preparation.prepare_case import PreparedScan, prepare_scan
from disyre_v2.preparation.qa_figure import write_qa_figure
from disyre_v2.preparation.template import DEFAULT_TEMPLATE, Template, load_template

logger = logging.getLogger(__name__)

FILE_ENDING = ".nii.gz"


@dataclass(frozen=True)
class PreparationOptions:
    """How scans are prepared (the flags of disyre_v2_prepare and of the converters' --prepare)."""

    template: str = DEFAULT_TEMPLATE
    template_mask: str | None = None
    skull_strip: str = "none"
    bias_correction: bool = False
    seed: int = 0


@dataclass(frozen=True)
class CaseJob:
    """One case to prepare: its input files and where its outputs go."""

    case_id: str
    channel_files: tuple[Path, ...]
    images_out: Path  # folder of CASE_0000.nii.gz ...
    masks_out: Path  # folder of CASE.nii.gz (brain mask)
    preparation_out: Path  # folder of CASE.tfm, CASE_qa.png, CASE.json
    mask_file: Path | None = None
    label_file: Path | None = None
    labels_out: Path | None = None

    def record_path(self) -> Path:
        return self.preparation_out / f"{self.case_id}.json"


@dataclass
class PreparationResult:
    prepared: list[dict] = field(default_factory=list)  # the CASE.json records
    failed: dict[str, str] = field(default_factory=dict)  # case -> reason


class PreparationFailed(UserError):
    """Some cases could not be prepared; the message lists each with its reason."""


@functools.lru_cache(maxsize=2)
def cached_template(template: str, template_mask: str | None) -> Template:
    return load_template(template, template_mask)


def prepare_one(job: CaseJob, options: PreparationOptions, threads: int | None = None) -> dict:
    """Prepare and write one case; returns its record. Nothing of the case is left on an error.
    ``threads`` caps ITK's threads (background processes share the cores instead of each taking all)."""
    if threads is not None:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    started = time.perf_counter()
    template = cached_template(options.template, options.template_mask)
    scan = prepare_scan(job.channel_files, template, mask_path=job.mask_file, label_path=job.label_file,
                        bias_correction=options.bias_correction, skull_strip=options.skull_strip, seed=options.seed)
    record = {
        "case_id": job.case_id,
        "source_files": [str(p) for p in job.channel_files],
        "source_mask": str(job.mask_file) if job.mask_file else None,
        "source_label": str(job.label_file) if job.label_file else None,
        "native_grid": Geometry.from_image(scan.native_grid).to_dict(),
        "transform": f"{job.case_id}.tfm",
        "transform_direction": "template point -> native point of the first channel",
        "qa_figure": f"{job.case_id}_qa.png",
        "template": template.name,
        "skull_strip": "mask file" if job.mask_file else options.skull_strip,
        "bias_correction": options.bias_correction,
        "mutual_information": -scan.metric,
        "brain_volume_ratio": scan.brain_volume_ratio,
    }
    write_case(job, scan, template, record, started)
    return record


def write_case(job: CaseJob, scan: PreparedScan, template: Template, record: dict, started: float) -> None:
    """All files under temporary names first; renamed together when every write succeeded. The exit
    stack renames last-entered first, so CASE.json, entered first, is renamed last."""
    with ExitStack() as stack:
        def target(path: Path) -> Path:
            suffix = FILE_ENDING if path.name.endswith(FILE_ENDING) else path.suffix
            return stack.enter_context(atomic_path(path, suffix))

        record_tmp = target(job.record_path())
        for c, image in enumerate(scan.images):
            sitk.WriteImage(image, str(target(job.images_out / f"{job.case_id}_{c:04d}{FILE_ENDING}")), True)
        sitk.WriteImage(scan.brain, str(target(job.masks_out / f"{job.case_id}{FILE_ENDING}")), True)
        if scan.label is not None and job.labels_out is not None:
            sitk.WriteImage(scan.label, str(target(job.labels_out / f"{job.case_id}{FILE_ENDING}")), True)
        sitk.WriteTransform(scan.transform, str(target(job.preparation_out / f"{job.case_id}.tfm")))
        write_qa_figure(scan.head, template.brain, scan.brain, target(job.preparation_out / f"{job.case_id}_qa.png"),
                        job.case_id)
        record["seconds"] = round(time.perf_counter() - started, 1)
        record_tmp.write_text(json.dumps(record, indent=2))


def check_template(options: PreparationOptions) -> Template:
    """The template of ``options``; a bad one, or one that cannot serve the skull stripping asked for, is
    a UserError (raised before anything is written, so that it stops everything at once)."""
    template = cached_template(options.template, options.template_mask)
    if options.skull_strip == "template" and not template.whole_head:
        raise UserError(f"--skull_strip template needs a whole-head template with its brain mask; {template.name} "
                        f"is skull-stripped", options.template,
                        "give --template HEAD.nii.gz --template_mask BRAIN.nii.gz, or use --skull_strip robex")
    return template


def prepare_cases(jobs: Sequence[CaseJob], options: PreparationOptions, num_processes: int = 0,
                  resume: bool = False, progress_label: str = "preparing") -> PreparationResult:
    """Prepare every job (``num_processes`` background processes; 0: in this process). A case that
    fails is logged and listed in the result; the others go on."""
    check_template(options)
    result = PreparationResult()
    todo = []
    for job in jobs:
        if resume and job.record_path().is_file():
            result.prepared.append(json.loads(job.record_path().read_text()))
        else:
            todo.append(job)
    with background_pool(num_processes) as pool, tqdm(total=len(todo), desc=progress_label, unit="case") as bar:
        threads = max(1, (os.cpu_count() or 1) // num_processes) if num_processes else None
        futures = [(job, pool.submit(prepare_one, job, options, threads)) for job in todo]
        for job, future in futures:
            try:
                result.prepared.append(future.result())
            except (UserError, ImageFormatError, FileNotFoundError, RuntimeError) as error:
                # ITK's own failures (a RuntimeError) are quoted by their reason alone, whole.
                reason = " ".join((itk_reason(error) if type(error) is RuntimeError else str(error)).split())
                result.failed[job.case_id] = reason
                logger.error("case %s failed: %s", job.case_id, reason)
            bar.update(1)
    return result


def failure_summary(failed: dict[str, str], total: int) -> str:
    lines = [f"  - {case}: {reason}" for case, reason in sorted(failed.items())]
    return f"{len(failed)} of {total} case(s) could not be prepared:\n" + "\n".join(lines)


def options_record(options: PreparationOptions) -> dict:
    return asdict(options)
