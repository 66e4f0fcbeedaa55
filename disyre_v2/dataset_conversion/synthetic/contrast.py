"""Tissue contrast of one subject: T1 from the template's own intensities, T2 from the tissue mixture.

Intensities are in units of the subject's white matter (WM = 1) until acquisition applies the
scanner gain. T1 keeps the real template's texture (deep nuclei, cortical ribbon) with a per-subject
gamma that jitters GM/WM and CSF/WM contrast. T2 follows the linear partial-volume model
T2 = p_WM + r_GM p_GM + r_CSF p_CSF with r_GM ~ U(1.3, 1.5) and r_CSF ~ U(2.2, 3.0).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from disyre_v2.dataset_conversion.synthetic.lesions import Lesion
from disyre_v2.dataset_conversion.synthetic.subject_anatomy import SubjectAnatomy

CHANNELS = ("T1", "T2")
T1_GAMMA_RANGE = (0.85, 1.15)
T2_GM_RATIO_RANGE = (1.3, 1.5)
T2_CSF_RATIO_RANGE = (2.2, 3.0)


@dataclass(frozen=True)
class SubjectContrast:
    t1_gamma: float
    t2_gm: float
    t2_csf: float

    def level(self, channel: str, tissue: str, tissue_t1: dict) -> float:
        """Intensity of pure ``tissue`` ("wm", "gm", "csf") in ``channel``, WM = 1."""
        if channel == "T1":
            return float(tissue_t1[tissue] ** self.t1_gamma)
        return {"wm": 1.0, "gm": self.t2_gm, "csf": self.t2_csf}[tissue]


def sample_contrast(rng: np.random.Generator) -> SubjectContrast:
    return SubjectContrast(t1_gamma=float(rng.uniform(*T1_GAMMA_RANGE)), t2_gm=float(rng.uniform(*T2_GM_RATIO_RANGE)),
                           t2_csf=float(rng.uniform(*T2_CSF_RATIO_RANGE)))


def render_healthy(subject: SubjectAnatomy, contrast: SubjectContrast) -> np.ndarray:
    """(2, ...) float32: T1 and T2 of the healthy subject, WM = 1, 0 outside the brain."""
    t1 = np.power(np.maximum(subject.t1, 0.0), np.float32(contrast.t1_gamma), dtype=np.float32)
    t2 = subject.wm + np.float32(contrast.t2_gm) * subject.gm + np.float32(contrast.t2_csf) * subject.csf
    return np.stack([t1, t2.astype(np.float32)])


def lesion_change(healthy: np.ndarray, lesion: Lesion, contrast: SubjectContrast, tissue_t1: dict) -> np.ndarray:
    """The intensity change (2, ...) the lesion makes, by linear partial volume.

    I = H + sum_k f_k s_k (v_k - H): compartment k covers the fraction f_k of the voxel and moves the
    intensity a share s_k (its local strength) of the way to its target v_k.
    """
    change = np.zeros(healthy.shape, np.float32)
    for c, channel in enumerate(CHANNELS):
        for compartment in lesion.compartments:
            appearance = compartment.appearance[channel]
            box = compartment.box
            h = healthy[c][box]
            if appearance.reference == "mul":
                target = h * np.float32(appearance.factor)
            else:
                target = np.float32(appearance.factor * contrast.level(channel, appearance.reference, tissue_t1))
            change[c][box] += compartment.fraction * compartment.strength * (target - h)
    return change
