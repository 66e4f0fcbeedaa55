"""Optional atrophy: CSF spaces grow at the expense of the tissue around them.

Every CSF space (sulci, the brain surface, the ventricles) widens by a few millimetres; the
ventricles, located through the template coordinates each voxel shows, widen more. Tissue within
the growth distance of CSF turns into CSF, with a one-voxel partial-volume edge, and the T1 of the
template follows the linear partial-volume model T1 = sum_k p_k T1_k.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from disyre_v2.dataset_conversion.synthetic.subject_anatomy import SubjectAnatomy

ATROPHY_PROBABILITY = 0.4
SULCAL_GROWTH_MM = (0.3, 1.5)
VENTRICULAR_GROWTH_MM = (1.0, 4.0)
VENTRICLE_REACH_MM = 25.0  # width of the Gaussian weight around the ventricle centre


@dataclass(frozen=True)
class Atrophy:
    sulcal_mm: float
    ventricular_mm: float

    def apply(self, subject: SubjectAnatomy) -> SubjectAnatomy:
        if subject.mni is None:
            raise ValueError("Atrophy needs the subject's regions: warp the template with regions=True.")
        # Distance to CSF measured on the template and carried by the warp (a subject's local
        # scale differs by a few per cent, far below the 0.3-5.5 mm of growth).
        distance = subject.csf_distance_mm
        r2 = sum((subject.mni[i] - np.float32(subject.ventricle_centre_mni[i])) ** 2 for i in range(3))
        growth = self.sulcal_mm + self.ventricular_mm * np.exp(-r2 / np.float32(2 * VENTRICLE_REACH_MM ** 2))
        lost = np.clip((growth - distance) / np.float32(subject.spacing) + 0.5, 0.0, 1.0).astype(np.float32)
        lost *= subject.brain > 0  # nothing grows outside the brain
        levels = subject.tissue_t1
        gain = lost * subject.gm, lost * subject.wm
        t1 = subject.t1 + gain[0] * np.float32(levels["csf"] - levels["gm"]) + gain[1] * np.float32(levels["csf"] - levels["wm"])
        return dataclasses.replace(subject, gm=subject.gm - gain[0], wm=subject.wm - gain[1],
                                   csf=subject.csf + gain[0] + gain[1], t1=np.maximum(t1, 0.0))


def sample_atrophy(rng: np.random.Generator, probability: float = ATROPHY_PROBABILITY) -> Atrophy | None:
    """With ``probability``, widening of 0.3-1.5 mm everywhere and 1-4 mm more at the ventricles."""
    draws = rng.uniform(size=3)  # always three draws, so later draws do not depend on the outcome
    if draws[0] >= probability:
        return None
    lo, hi = SULCAL_GROWTH_MM
    vlo, vhi = VENTRICULAR_GROWTH_MM
    return Atrophy(sulcal_mm=float(lo + (hi - lo) * draws[1]), ventricular_mm=float(vlo + (vhi - vlo) * draws[2]))
