"""Tiny test sets for the evaluation tests: brains, lesions, anomaly maps, written as NIfTI files."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tests.nifti_factory import brain_volume, write_nifti

SHAPE = (18, 20, 16)
SPACING = (2.0, 2.0, 2.0)


@dataclass
class TinyCase:
    case_id: str
    image: np.ndarray
    brain: np.ndarray
    label: np.ndarray
    score_map: np.ndarray
    kind: str


@dataclass
class TinyTestSet:
    root: Path  # the raw dataset folder (imagesTs, labelsTs, masksTs)
    predictions: Path
    cases: list[TinyCase] = field(default_factory=list)

    @property
    def labels(self) -> Path:
        return self.root / "labelsTs"

    def pooled(self) -> tuple[np.ndarray, np.ndarray]:
        """All brain voxels of all cases: (scores, anomalous)."""
        scores = np.concatenate([c.score_map[c.brain] for c in self.cases])
        labels = np.concatenate([c.label[c.brain] > 0 for c in self.cases])
        return scores, labels


def make_case(case_id: str, index: int, kind: str, shape=SHAPE) -> TinyCase:
    """A brain with (unless ``kind`` is healthy) one spherical lesion that the map scores higher,
    among noise that makes the map imperfect."""
    rng = np.random.default_rng(100 + index)
    image = brain_volume(shape, seed=index)
    brain = image > 0
    label = np.zeros(shape, np.uint8)
    if kind != "healthy":
        z, y, x = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
        centre = np.array(shape) // 2 + rng.integers(-2, 3, size=3)
        radius = 2.0 if kind == "small" else 3.5
        label[((z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= radius**2) & brain] = 1
    score_map = rng.gamma(2.0, 0.05, size=shape) + 0.25 * label * rng.random(shape)
    score_map = (np.round(score_map, 3) * brain).astype(np.float32)  # rounded: ties, as real maps have
    image[label > 0] += 40
    return TinyCase(case_id, image, brain, label, score_map, kind)


def write_test_set(base: Path, kinds: list[str], masks: bool = True, images: bool = True,
                   restorations: bool = False, shape=SHAPE) -> TinyTestSet:
    root = base / "Dataset900_Tiny"
    test_set = TinyTestSet(root, base / "predictions")
    for index, kind in enumerate(kinds):
        case = make_case(f"case_{index:03d}", index, kind, shape)
        test_set.cases.append(case)
        write_nifti(root / "labelsTs" / f"{case.case_id}.nii.gz", case.label, spacing=SPACING)
        if masks:
            write_nifti(root / "masksTs" / f"{case.case_id}.nii.gz", case.brain.astype(np.uint8), spacing=SPACING)
        if images:
            write_nifti(root / "imagesTs" / f"{case.case_id}_0000.nii.gz", case.image, spacing=SPACING)
        write_nifti(test_set.predictions / f"{case.case_id}.nii.gz", case.score_map, spacing=SPACING)
        if restorations:
            restored = np.where(case.label > 0, case.image - 40, case.image).astype(np.float32)
            write_nifti(test_set.predictions / "restorations" / f"{case.case_id}_0000.nii.gz", restored, spacing=SPACING)
    return test_set
