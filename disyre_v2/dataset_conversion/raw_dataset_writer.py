"""Build a raw dataset folder atomically: everything goes into a hidden staging folder that is
renamed into place only after dataset.json is written and the integrity check passes."""
from __future__ import annotations

import logging
import shutil
import uuid
from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk

from disyre_v2.dataset.dataset_json import load_dataset_json, write_dataset_json
from disyre_v2.dataset.integrity import verify_dataset_integrity
from disyre_v2.dataset.layout import channel_file_name, is_safe_case_name, list_raw_cases
from disyre_v2.imageio.errors import ImageFormatError
from disyre_v2.imageio.geometry import Geometry, check_same_grid
from disyre_v2.imageio.reader import read_label, read_sitk_image
from disyre_v2.imageio.writer import write_image, write_mask
from disyre_v2.paths import DATASET_NAME_PATTERN, dataset_name, existing_datasets, raw_folder

logger = logging.getLogger(__name__)

FILE_ENDING = ".nii.gz"


class DatasetExistsError(FileExistsError):
    """The target dataset (or another with the same id) exists and --overwrite was not given."""


class RawDatasetWriter:
    """Context manager that writes ``$DISYRE_raw/DatasetNNN_Name`` or nothing at all.

    >>> with RawDatasetWriter(1, "CamCAN", ["T1", "T2"]) as writer:
    ...     writer.add_training_case("CC110033", [t1, t2])
    """

    def __init__(
        self,
        dataset_id: int,
        name: str,
        channel_names: Sequence[str],
        *,
        overwrite: bool = False,
        append: bool = False,
        description: str = "",
        labels: dict[str, int] | None = None,
        raw_base: Path | str | None = None,
        **dataset_json_extra,
    ):
        self.name = dataset_name(dataset_id, name)
        self.dataset_id = int(dataset_id)
        self.channel_names = list(channel_names)
        self.overwrite = overwrite
        self.append = append
        if overwrite and append:
            raise ValueError("--overwrite and --append exclude each other: replace the dataset or add to it.")
        self.description = description
        self.labels = labels
        self.extra = dataset_json_extra
        self.raw_base = Path(raw_base) if raw_base is not None else raw_folder()
        self.target = self.raw_base / self.name
        self.staging: Path | None = None
        self.training: list[str] = []
        self.test: list[str] = []
        self._has = {"masksTr": [], "masksTs": [], "labelsTs": []}

    # -- life cycle -------------------------------------------------------------------------
    def __enter__(self) -> "RawDatasetWriter":
        same_id = [n for n in existing_datasets(self.raw_base)
                   if int(DATASET_NAME_PATTERN.match(n).group(1)) == self.dataset_id]
        if self.append:
            return self._enter_append(same_id)
        if same_id and not self.overwrite:
            raise DatasetExistsError(
                f"{self.raw_base / same_id[0]} already exists (dataset id {self.dataset_id:03d}). "
                f"Pass --overwrite to replace it, or choose another id with -d."
            )
        if any(n != self.name for n in same_id):
            raise DatasetExistsError(
                f"Dataset id {self.dataset_id:03d} is taken by {', '.join(n for n in same_id if n != self.name)}; "
                f"--overwrite only replaces a dataset of the same name ({self.name}). Remove it by hand or pick another id."
            )
        self.raw_base.mkdir(parents=True, exist_ok=True)
        self.staging = self.raw_base / f".{self.name}.partial-{uuid.uuid4().hex[:8]}"
        self.staging.mkdir()
        return self

    def _enter_append(self, same_id: list[str]) -> "RawDatasetWriter":
        """Start from a copy of the existing dataset, so adding cases is as atomic as writing anew."""
        if same_id != [self.name]:
            found = ", ".join(same_id) if same_id else "none"
            raise FileNotFoundError(
                f"--append adds cases to {self.target}, which does not exist (datasets with id "
                f"{self.dataset_id:03d}: {found}). Drop --append to create it, or fix -d/--name."
            )
        existing = load_dataset_json(self.target)
        existing_channels = [existing["channel_names"][str(i)] for i in range(len(existing["channel_names"]))]
        if existing_channels != self.channel_names:
            raise ValueError(
                f"{self.target} has channels {existing_channels}, the new cases {self.channel_names}; "
                f"a dataset has one channel layout. Use --channel_names to match, or another dataset id."
            )
        self.staging = self.raw_base / f".{self.name}.partial-{uuid.uuid4().hex[:8]}"
        shutil.copytree(self.target, self.staging)
        self.description = self.description or existing.get("description", "")
        self.labels = self.labels or existing.get("labels")
        for split, cases in (("Tr", self.training), ("Ts", self.test)):
            for case in list_raw_cases(self.staging, split, existing):
                cases.append(case.case_id)
                if case.mask_path is not None:
                    self._has[f"masks{split}"].append(case.case_id)
                if case.label_path is not None:
                    self._has["labelsTs"].append(case.case_id)
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if exc_type is None:
                self._finish()
        finally:
            if self.staging is not None and self.staging.exists():
                shutil.rmtree(self.staging, ignore_errors=True)
        return False

    def _finish(self) -> None:
        if not self.training and not self.test:
            raise ValueError(f"No case was found to write into {self.name}; nothing was written.")
        write_dataset_json(
            self.staging,
            self.name.split("_", 1)[1],
            self.channel_names,
            len(self.training),
            len(self.test),
            file_ending=FILE_ENDING,
            masks_tr=bool(self.training) and len(self._has["masksTr"]) == len(self.training),
            masks_ts=bool(self.test) and len(self._has["masksTs"]) == len(self.test),
            labels_ts=bool(self.test) and len(self._has["labelsTs"]) == len(self.test),
            labels=self.labels,
            description=self.description,
            **self.extra,
        )
        # Every file was checked as it was added; this pass checks names, counts and declarations.
        verify_dataset_integrity(self.staging, read_images=False, progress=False)
        old = None
        if self.target.exists():
            old = self.raw_base / f".{self.name}.old-{uuid.uuid4().hex[:8]}"
            self.target.rename(old)
        try:
            self.staging.rename(self.target)
        except OSError:
            if old is not None:
                old.rename(self.target)  # put the previous dataset back
            raise
        self.staging = None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        logger.info("Wrote %s: %d training and %d test case(s).", self.target, len(self.training), len(self.test))

    # -- cases ------------------------------------------------------------------------------
    def add_training_case(self, case_id: str, channel_files: Sequence[Path | str], mask_file: Path | str | None = None) -> None:
        """Copy a healthy case; without a mask file, the mask is derived as any channel > 0."""
        self._add_case("Tr", case_id, channel_files, mask_file, None)

    def add_test_case(self, case_id: str, channel_files: Sequence[Path | str], label_file: Path | str | None = None,
                      mask_file: Path | str | None = None) -> None:
        """Copy a test case and its lesion label (> 0 anomalous); masks as for training cases."""
        self._add_case("Ts", case_id, channel_files, mask_file, label_file)

    def add_arrays(self, split: str, case_id: str, channels: np.ndarray, geometry: Geometry,
                   mask: np.ndarray | None = None, label: np.ndarray | None = None) -> None:
        """Write a case given as arrays (C, Z, Y, X) on ``geometry`` (used by the synthetic benchmark)."""
        self._register(split, case_id)
        for c, channel in enumerate(channels):
            write_image(channel, geometry, self.staging / f"images{split}" / channel_file_name(case_id, c, FILE_ENDING))
        self._write_mask(split, case_id, mask if mask is not None else (channels > 0).any(0), geometry)
        if label is not None:
            write_mask(label, geometry, self.staging / "labelsTs" / f"{case_id}{FILE_ENDING}")
            self._has["labelsTs"].append(case_id)

    def _register(self, split: str, case_id: str) -> None:
        if self.staging is None:
            raise RuntimeError("RawDatasetWriter must be used as a context manager.")
        if not is_safe_case_name(case_id):
            raise ValueError(f"Case name {case_id!r} is not safe as a file name (letters, digits, '_' and '-').")
        if case_id in self.training or case_id in self.test:
            raise ValueError(f"Case {case_id!r} was added twice; case names must be unique.")
        (self.training if split == "Tr" else self.test).append(case_id)

    def _add_case(self, split, case_id, channel_files, mask_file, label_file) -> None:
        if len(channel_files) != len(self.channel_names):
            raise ValueError(f"Case {case_id}: {len(channel_files)} channel file(s) given, expected "
                             f"{len(self.channel_names)} ({', '.join(self.channel_names)}).")
        images = [read_sitk_image(f) for f in channel_files]
        geometry = Geometry.from_image(images[0])
        for path, image in zip(channel_files[1:], images[1:]):
            check_same_grid(geometry, Geometry.from_image(image), channel_files[0], path)
        self._register(split, case_id)
        for c, image in enumerate(images):
            self._write_sitk(image, self.staging / f"images{split}" / channel_file_name(case_id, c, FILE_ENDING))
        if mask_file is not None:
            mask_image = read_sitk_image(mask_file)
            check_same_grid(geometry, Geometry.from_image(mask_image), channel_files[0], mask_file)
            mask = sitk.GetArrayFromImage(mask_image) > 0
            if not mask.any():
                raise ImageFormatError(f"{mask_file} is empty (no voxel > 0): a brain mask must cover the brain.")
        else:
            mask = np.zeros(geometry.shape_zyx, bool)
            for image in images:
                mask |= sitk.GetArrayViewFromImage(image) > 0
            if not mask.any():
                raise ImageFormatError(f"{channel_files[0]}: no voxel > 0, so no brain mask can be derived; is it blank?")
        self._write_mask(split, case_id, mask, geometry)
        if label_file is not None:
            label = read_label(label_file, geometry, channel_files[0])
            if label.min() < 0 or label.max() > 255:
                raise ImageFormatError(f"{label_file}: label values must lie in 0..255.")
            write_mask(label, geometry, self.staging / "labelsTs" / f"{case_id}{FILE_ENDING}")
            self._has["labelsTs"].append(case_id)

    def _write_mask(self, split: str, case_id: str, mask: np.ndarray, geometry: Geometry) -> None:
        write_mask(np.asarray(mask, dtype=np.uint8), geometry, self.staging / f"masks{split}" / f"{case_id}{FILE_ENDING}")
        self._has[f"masks{split}"].append(case_id)

    @staticmethod
    def _write_sitk(image: sitk.Image, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(image, str(path), useCompression=True)
