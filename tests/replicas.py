"""Miniature replicas of the public datasets' download trees, for the converter tests.

Folder and file names, extensions (.nii vs .nii.gz), pixel types, label values, whole-head versus
skull-stripped content and the known quirks (BraTS case 355, ATLAS Testing without masks) follow
the real releases; only the volumes are tiny (12 x 14 x 10 voxels). Each writer returns a
:class:`Replica`: the folder to pass as -i and every file it wrote, by case and role.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from tests.nifti_factory import brain_volume, write_nifti

SHAPE_ZYX = (10, 14, 12)
# Geometries in SimpleITK (LPS) terms. Registered derivatives share one atlas-like grid (SRI24 is
# LPS-like: x and y flipped); raw scans each have their own grid.
SRI24 = dict(spacing=(1.0, 1.0, 1.0), origin=(0.0, -239.0, 0.0), direction=(-1, 0, 0, 0, -1, 0, 0, 0, 1))
MNI_2009A = dict(spacing=(1.0, 1.0, 1.0), origin=(98.0, 134.0, -72.0), direction=(-1, 0, 0, 0, -1, 0, 0, 0, 1))
SAGITTAL = (0, 0, 1, 1, 0, 0, 0, 1, 0)  # raw scans acquired sagittally: a permuted direction


@dataclass
class Replica:
    root: Path  # the folder to give as -i
    files: dict[str, dict[str, Path]] = field(default_factory=dict)  # case → role → path

    def add(self, case: str, role: str, path: Path) -> None:
        self.files.setdefault(case, {})[role] = path


def skull_stripped(seed: int, scale: float = 1.0) -> np.ndarray:
    """Brain only: zero outside an ellipsoid."""
    return brain_volume(SHAPE_ZYX, seed) * scale


def whole_head(seed: int, shape_zyx=SHAPE_ZYX) -> np.ndarray:
    """Brain, a bright scalp shell and noisy air: no voxel is 0, as in an unstripped scan."""
    rng = np.random.default_rng(seed + 1000)
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape_zyx], indexing="ij")
    r = np.sqrt(z**2 + y**2 + x**2)
    head = brain_volume(shape_zyx, seed) + np.where((r >= 0.8) & (r < 0.95), 180.0, 0.0)
    return (head + rng.uniform(1, 5, size=shape_zyx)).astype(np.float32)


def lesion(seed: int, values: Iterable[int] = (1,)) -> np.ndarray:
    """A blob inside the brain, made of nested shells with the given label values (outermost first)."""
    rng = np.random.default_rng(seed + 2000)
    centre = np.array(SHAPE_ZYX) / 2 + rng.integers(-1, 2, size=3)
    zz, yy, xx = np.indices(SHAPE_ZYX)
    r = np.sqrt((zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2)
    label = np.zeros(SHAPE_ZYX, np.uint8)
    values = list(values)
    for i, value in enumerate(values):
        label[r < 3.0 - i * 0.9] = value
    return label


def _name(stem: str, compressed: bool) -> str:
    return stem + (".nii.gz" if compressed else ".nii")


# -- CamCAN ---------------------------------------------------------------------------------------
CAMCAN_SUBJECTS = ("CC110033", "CC110037", "CC120065")


def write_camcan(base: Path, subjects=CAMCAN_SUBJECTS, raw: bool = True, derivatives: str | None = "flat",
                 compressed: bool = True, omit: Iterable[tuple[str, str]] = ()) -> Replica:
    """cc700/mri/pipeline/release004/BIDS_20190411/anat/sub-*/anat/ raw scans (+ .json sidecars) and
    the stripped, registered derivatives, "flat" (one folder) or "nested" (one folder per subject).
    ``omit``: (subject, role) pairs not written, role "T1"/"T2" (derivative) or "T1_raw"/"T2_raw"."""
    omit = set(omit)
    replica = Replica(base)
    bids = base / "cc700" / "mri" / "pipeline" / "release004" / "BIDS_20190411" / "anat"
    if raw:
        bids.mkdir(parents=True, exist_ok=True)
        (bids / "participants.tsv").write_text("participant_id\tage\n" + "".join(f"sub-{s}\t{30 + i}\n" for i, s in enumerate(subjects)))
    for i, subject in enumerate(subjects):
        for m, bids_suffix in (("T1", "T1w"), ("T2", "T2w")):
            if raw and (subject, f"{m}_raw") not in omit:
                # Raw T1 (sagittal, 1 mm) and T2 (axial, 1.1 mm) are on different grids.
                grid = dict(spacing=(1.0, 1.0, 1.0), direction=SAGITTAL) if m == "T1" else dict(spacing=(1.1, 1.1, 1.1))
                path = write_nifti(bids / f"sub-{subject}" / "anat" / _name(f"sub-{subject}_{bids_suffix}", True),
                                   whole_head(i), dtype=np.int16, **grid)
                path.with_name(f"sub-{subject}_{bids_suffix}.json").write_text('{"RepetitionTime": 2.25}')
                replica.add(subject, f"{m}_raw", path)
            if derivatives and (subject, m) not in omit:
                folder = base / "camcan_registered" if derivatives == "flat" else base / "derivatives" / f"sub-{subject}" / "anat"
                path = write_nifti(folder / _name(f"sub-{subject}_{bids_suffix}_stripped_registered", compressed),
                                   skull_stripped(i, 1.0 if m == "T1" else 1.5), dtype=np.float32, **SRI24)
                replica.add(subject, m, path)
    return replica


# -- ATLAS R2.0 -----------------------------------------------------------------------------------
ATLAS_TRAINING = (("R001", "sub-r001s001"), ("R001", "sub-r001s002"), ("R002", "sub-r002s001"))
ATLAS_TESTING = (("R003", "sub-r003s001"),)
ATLAS_SPACE = "space-MNI152NLin2009aSym"


def write_atlas(base: Path, training=ATLAS_TRAINING, testing=ATLAS_TESTING, derivatives: bool = False,
                registered_masks: bool = True, omit: Iterable[tuple[str, str]] = ()) -> Replica:
    """ATLAS_2/Training/R0xx/sub-*/ses-1/anat/ T1 (whole-head, defaced) + binary lesion mask, and
    ATLAS_2/Testing/... T1 only. With ``derivatives``: ATLAS_2_registered/ holds
    ..._T1w_stripped_registered on an SRI24-like grid, and (``registered_masks``) the masks moved
    with them. Case keys are "sub-r001s001_ses-1"; roles "T1", "mask", "T1_derived", "mask_registered"."""
    omit = set(omit)
    root = base / "ATLAS_2"
    replica = Replica(root)
    (root / "Training").mkdir(parents=True, exist_ok=True)
    (root / "Training" / "20220425_ATLAS_2.0_MetaData.csv").write_text("Subject ID,Session\n")
    for split, subjects in (("Training", training), ("Testing", testing)):
        for i, (cohort, subject) in enumerate(subjects):
            seed = i if split == "Training" else 10 + i
            case = f"{subject}_ses-1"
            anat = root / split / cohort / subject / "ses-1" / "anat"
            if (case, "T1") not in omit:
                replica.add(case, "T1", write_nifti(anat / _name(f"{case}_{ATLAS_SPACE}_T1w", True),
                                                    whole_head(seed), dtype=np.float32, **MNI_2009A))
            if split == "Training" and (case, "mask") not in omit:
                replica.add(case, "mask", write_nifti(anat / _name(f"{case}_{ATLAS_SPACE}_label-L_desc-T1lesion_mask", True),
                                                      lesion(seed), dtype=np.uint8, **MNI_2009A))
            if derivatives and (case, "T1_derived") not in omit:
                flat = base / "ATLAS_2_registered"
                replica.add(case, "T1_derived", write_nifti(flat / _name(f"{case}_{ATLAS_SPACE}_T1w_stripped_registered", True),
                                                            skull_stripped(seed), dtype=np.float32, **SRI24))
                if split == "Training" and registered_masks:
                    replica.add(case, "mask_registered", write_nifti(
                        flat / _name(f"{case}_{ATLAS_SPACE}_label-L_desc-T1lesion_mask_registered", True),
                        lesion(seed), dtype=np.uint8, **SRI24))
    if derivatives:
        replica.root = base  # -i must cover both the BIDS tree and the derivatives folder
    return replica


# -- BraTS 2020 -----------------------------------------------------------------------------------
BRATS_CASES = ("BraTS20_Training_001", "BraTS20_Training_002", "BraTS20_Training_355")
BRATS_MODALITIES = ("flair", "t1", "t1ce", "t2")
BRATS_LABELS = (2, 1, 4)  # edema outside, necrosis, enhancing core


def write_brats2020(base: Path, layout: str = "official", cases=BRATS_CASES, validation: int = 0,
                    omit: Iterable[tuple[str, str]] = ()) -> Replica:
    """layout "official": MICCAI_BraTS2020_TrainingData/ with .nii.gz; "uncompressed": the shared copy
    BraTS2020_TrainingData/MICCAI_BraTS2020_TrainingData/ with .nii, where case 355's segmentation is
    W39_1998.09.19_Segm.nii (float). ``validation`` adds that many BraTS20_Validation_NNN cases (no seg).
    Roles: "flair", "t1", "t1ce", "t2", "seg"."""
    omit = set(omit)
    compressed = layout == "official"
    top = base / "MICCAI_BraTS2020_TrainingData" if compressed else base / "BraTS2020_TrainingData" / "MICCAI_BraTS2020_TrainingData"
    top.mkdir(parents=True, exist_ok=True)
    (top / "name_mapping.csv").write_text("Grade,BraTS_2017_subject_ID,BraTS_2018_subject_ID,BraTS_2019_subject_ID,BraTS_2020_subject_ID\n")
    (top / "survival_info.csv").write_text("Brats20ID,Age,Survival_days,Extent_of_Resection\n")
    replica = Replica(base)
    for i, case in enumerate(cases):
        folder = top / case
        for j, modality in enumerate(BRATS_MODALITIES):
            if (case, modality) not in omit:
                replica.add(case, modality, write_nifti(folder / _name(f"{case}_{modality}", compressed),
                                                        skull_stripped(i, 1.0 + j / 4), dtype=np.int16, **SRI24))
        if (case, "seg") not in omit:
            if case.endswith("_355") and not compressed:
                path = write_nifti(folder / "W39_1998.09.19_Segm.nii", lesion(i, BRATS_LABELS), dtype=np.float32, **SRI24)
            else:
                path = write_nifti(folder / _name(f"{case}_seg", compressed), lesion(i, BRATS_LABELS), dtype=np.uint8, **SRI24)
            replica.add(case, "seg", path)
    for k in range(1, validation + 1):
        case = f"BraTS20_Validation_{k:03d}"
        for j, modality in enumerate(BRATS_MODALITIES):
            replica.add(case, modality, write_nifti(base / "MICCAI_BraTS2020_ValidationData" / case / _name(f"{case}_{modality}", True),
                                                    skull_stripped(50 + k), dtype=np.int16, **SRI24))
    return replica


# -- IXI ------------------------------------------------------------------------------------------
IXI_SUBJECTS = ("IXI002-Guys-0828", "IXI012-HH-1211", "IXI035-IOP-0873")


def write_ixi(base: Path, modalities=("T1", "T2"), subjects=IXI_SUBJECTS, stripped: bool = False,
              masks: bool = False, omit: Iterable[tuple[str, str]] = ()) -> Replica:
    """IXI-T1/IXI002-Guys-0828-T1.nii.gz, IXI-T2/... (whole-head; T1 sagittal, T2 on another grid).
    ``stripped``: IXI-T1-stripped/...-T1_stripped.nii.gz; ``masks``: IXI-T1-masks/...-T1_mask.nii.gz
    (brain masks on the scan grid). Roles: "T1", "T2", "T1_stripped", "T1_mask", ..."""
    omit = set(omit)
    replica = Replica(base)
    for i, subject in enumerate(subjects):
        for m in modalities:
            grid = dict(direction=SAGITTAL, spacing=(0.94, 0.94, 1.2)) if m == "T1" else dict(spacing=(0.9, 0.9, 1.2), origin=(-5.0, 3.0, 1.0))
            if (subject, m) not in omit:
                replica.add(subject, m, write_nifti(base / f"IXI-{m}" / f"{subject}-{m}.nii.gz", whole_head(i), dtype=np.int16, **grid))
            if stripped and (subject, f"{m}_stripped") not in omit:
                replica.add(subject, f"{m}_stripped", write_nifti(
                    base / f"IXI-{m}-stripped" / f"{subject}-{m}_stripped.nii.gz", skull_stripped(i), dtype=np.int16, **grid))
            if masks and (subject, f"{m}_mask") not in omit:
                replica.add(subject, f"{m}_mask", write_nifti(
                    base / f"IXI-{m}-masks" / f"{subject}-{m}_mask.nii.gz", (skull_stripped(i) > 0).astype(np.uint8), **grid))
    return replica
