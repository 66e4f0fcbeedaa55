"""Anatomical regions of a subject, asked in MNI space through the template point each voxel shows."""
from __future__ import annotations

import numpy as np

from disyre_v2.dataset_conversion.synthetic.subject_anatomy import SubjectAnatomy


def cerebrum(subject: SubjectAnatomy) -> np.ndarray:
    """Supratentorial brain: excludes cerebellum and brainstem (rough MNI boxes) and the midline."""
    x, y, z = subject.mni
    infratentorial = (z < -45) | ((y < -40) & (z < -5)) | ((np.abs(x) < 15) & (y < -10) & (z < -5))
    return (subject.brain >= 0.5) & ~infratentorial & (np.abs(x) >= 3)


def hemisphere(subject: SubjectAnatomy, side: int, min_abs_x_mm: float = 0.0) -> np.ndarray:
    """Voxels of the right (side = +1, MNI x > 0) or left (-1) hemisphere, at least ``min_abs_x_mm`` from the midline."""
    return subject.mni[0] * side >= min_abs_x_mm


def height_between(subject: SubjectAnatomy, low_mm: float, high_mm: float) -> np.ndarray:
    z = subject.mni[2]
    return (z >= low_mm) & (z <= high_mm)


def near_ventricles(subject: SubjectAnatomy, ventricle_centre_mni: np.ndarray, radius_mm: float) -> np.ndarray:
    d2 = sum((subject.mni[i] - np.float32(ventricle_centre_mni[i])) ** 2 for i in range(3))
    return d2 <= radius_mm ** 2


def first_nonempty(*candidates: np.ndarray) -> np.ndarray:
    """The first candidate mask with a voxel in it (criteria from strict to lenient)."""
    for candidate in candidates:
        if candidate.any():
            return candidate
    raise ValueError("No voxel satisfies any of the placement criteria; is the subject's brain empty?")
