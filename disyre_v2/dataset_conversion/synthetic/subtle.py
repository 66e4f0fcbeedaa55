"""Subtle lesions: small white-matter hyperintensities (3-10 mm) and low-contrast blobs.

WMH are confined to white matter (their fraction is the shape times the WM fraction), T2 x1.2-1.5
and T1 x0.85-0.95 of the tissue they replace: in T2 they sit at grey-matter brightness, so no
threshold separates them. Low-contrast blobs (6-18 mm) anywhere in tissue change T1 by 4-10 % and
T2 by 8-20 %, with patchy strength.
"""
from __future__ import annotations

import numpy as np

from disyre_v2.dataset_conversion.synthetic.lesions import (
    LABEL_COVERAGE, Appearance, Compartment, Lesion, Placement, choose_voxel, partial_volume,
)
from disyre_v2.dataset_conversion.synthetic.regions import cerebrum, first_nonempty, height_between, near_ventricles
from disyre_v2.dataset_conversion.synthetic.shapes import IrregularEllipsoid, outline_noise, random_rotation, signed_distance
from disyre_v2.dataset_conversion.synthetic.smooth_field import random_smooth_field
from disyre_v2.dataset_conversion.synthetic.subject_anatomy import SubjectAnatomy

WMH_COUNT = (2, 8)
WMH_DIAMETER_MM = (3.0, 10.0)
WMH_T2 = (1.2, 1.5)
WMH_T1 = (0.85, 0.95)
P_PERIVENTRICULAR = 0.5
BLOB_COUNT = (1, 3)
BLOB_DIAMETER_MM = (6.0, 18.0)
BLOB_T1 = (0.90, 0.96)
BLOB_T2 = (1.08, 1.20)
LABEL = 1


class SubtleModel:
    kind = "subtle"

    def place(self, rng: np.random.Generator, subject: SubjectAnatomy) -> Placement:
        return Placement(centre_vox=np.zeros(3, int))  # several small lesions, placed in draw

    def draw(self, rng: np.random.Generator, subject: SubjectAnatomy, placement: Placement) -> Lesion:
        lesion = Lesion(kind=self.kind)
        coverage = np.zeros(subject.shape, np.float32)
        brain = cerebrum(subject)
        white = (subject.wm >= 0.85) & brain & (subject.depth_mm >= 8.0)
        white = first_nonempty(white & height_between(subject, -10, 50), white, subject.wm >= 0.5)
        periventricular = first_nonempty(white & near_ventricles(subject, subject.ventricle_centre_mni, 35.0), white)
        tissue = first_nonempty((subject.tissue >= 0.8) & brain & (subject.depth_mm >= 5.0), subject.tissue >= 0.5)
        kept = {"wmh": 0, "blob": 0}
        for _ in range(int(rng.integers(WMH_COUNT[0], WMH_COUNT[1] + 1))):
            candidates = periventricular if rng.uniform() < P_PERIVENTRICULAR else white
            look = {"T1": Appearance("mul", float(rng.uniform(*WMH_T1))), "T2": Appearance("mul", float(rng.uniform(*WMH_T2)))}
            kept["wmh"] += self._add(rng, subject, lesion, coverage, "wmh", candidates, WMH_DIAMETER_MM, 0.1,
                                     look, subject.wm, patchy=False)
        for _ in range(int(rng.integers(BLOB_COUNT[0], BLOB_COUNT[1] + 1))):
            look = {"T1": Appearance("mul", float(rng.uniform(*BLOB_T1))), "T2": Appearance("mul", float(rng.uniform(*BLOB_T2)))}
            kept["blob"] += self._add(rng, subject, lesion, coverage, "blob", tissue, BLOB_DIAMETER_MM, 0.2,
                                      look, subject.tissue, patchy=True)
        lesion.info = {"wmh": kept["wmh"], "blobs": kept["blob"],
                       "volume_ml": round(sum(c.volume_ml(subject.spacing) for c in lesion.compartments), 3)}
        return lesion

    @staticmethod
    def _add(rng, subject, lesion, coverage, name, candidates, diameter_range, roughness, look, weight, patchy) -> int:
        """Draw one small lesion; keep it (return 1) only if some voxel is at least half lesion."""
        centre = choose_voxel(rng, candidates)
        radii = rng.uniform(0.7, 1.4, 3)
        shape = IrregularEllipsoid(radii=tuple(radii / radii.mean()), rotation=random_rotation(rng),
                                   noise=outline_noise(rng, 2.0), roughness=roughness)
        diameter = float(rng.uniform(*diameter_range))
        base_strength = float(rng.uniform(0.7, 1.0))
        box, phi = signed_distance(shape, centre, diameter / 2.0, subject.spacing, subject.shape)
        strength = np.float32(1.0)
        if patchy:
            axes = [np.arange(b.start, b.stop) * subject.spacing for b in box]
            field = random_smooth_field(rng, [a[0] for a in axes], [a[-1] for a in axes], 4.0).on_grid(axes)[0]
            strength = np.clip(base_strength + 0.15 * field, 0.4, 1.0).astype(np.float32)
        fraction = np.minimum(partial_volume(phi, subject.spacing) * weight[box], 1.0 - coverage[box])
        if fraction.max() < LABEL_COVERAGE:
            return 0
        lesion.add(Compartment(name, LABEL, box, fraction, look, strength), coverage)
        return 1
