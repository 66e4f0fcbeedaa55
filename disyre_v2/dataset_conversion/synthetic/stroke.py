"""ATLAS-like chronic stroke: a cortical-subcortical wedge or a blob in one hemisphere, plus lacunes.

Chronic infarcts are cavities of CSF-like signal (T1 dark, T2 bright) lined by gliosis (T1 slightly
dark, T2 bright). Volumes are heavy-tailed: uniform in log between 0.2 and 150 mL; above 20 mL the
lesion is always a territorial wedge. The lesion only
replaces tissue: where the wedge crosses a sulcus or a ventricle nothing changes and nothing is
labelled. Cavitation is incomplete in places, so part of the lesion overlaps normal CSF and GM.
"""
from __future__ import annotations

import numpy as np

from disyre_v2.dataset_conversion.synthetic.lesions import (
    LABEL_COVERAGE, Appearance, Compartment, Lesion, Placement, choose_voxel, log_uniform, partial_volume,
)
from disyre_v2.dataset_conversion.synthetic.regions import cerebrum, first_nonempty, height_between, hemisphere
from disyre_v2.dataset_conversion.synthetic.shapes import (
    IrregularEllipsoid, Wedge, fit_scale, outline_noise, random_rotation, signed_distance,
)
from disyre_v2.dataset_conversion.synthetic.smooth_field import random_smooth_field
from disyre_v2.dataset_conversion.synthetic.subject_anatomy import SubjectAnatomy

VOLUME_ML = (0.2, 150.0)
P_WEDGE = 0.6
LARGEST_BLOB_ML = 20.0  # larger infarcts are territorial: always a wedge
WEDGE_HALF_ANGLE_DEG = (20.0, 35.0)
GLIOSIS_MM = (1.0, 3.0)
P_LACUNES = 0.5
LACUNE_DIAMETER_MM = (3.0, 15.0)
LABEL = 1


def _cavity_look(rng: np.random.Generator) -> dict:
    return {"T1": Appearance("csf", float(rng.uniform(1.0, 1.5))), "T2": Appearance("csf", float(rng.uniform(0.75, 0.95)))}


class StrokeModel:
    kind = "atlas"

    def place(self, rng: np.random.Generator, subject: SubjectAnatomy) -> Placement:
        return Placement(centre_vox=np.zeros(3, int))  # placed in draw: a stroke has no mass effect

    def draw(self, rng: np.random.Generator, subject: SubjectAnatomy, placement: Placement) -> Lesion:
        spacing = subject.spacing
        side = int(rng.choice([-1, 1]))
        volume_ml = log_uniform(rng, *VOLUME_ML)
        wedge = rng.uniform() < P_WEDGE or volume_ml > LARGEST_BLOB_ML
        brain, tissue = cerebrum(subject), subject.tissue
        if wedge:
            cortex = (subject.gm >= 0.5) & brain & (subject.depth_mm <= 6.0)
            centre = choose_voxel(rng, first_nonempty(
                cortex & hemisphere(subject, side, 25.0) & height_between(subject, -15, 60) & (np.abs(subject.mni[1] + 15) <= 60),
                cortex & hemisphere(subject, side, 15.0), cortex, tissue >= 0.5))
            deep = np.argwhere(brain & (subject.depth_mm >= 25.0) & hemisphere(subject, side, 5.0))
            target = deep.mean(axis=0) if len(deep) else np.asarray(subject.shape) / 2.0
            axis = (target - centre) / max(np.linalg.norm(target - centre), 1e-6) + 0.2 * rng.standard_normal(3)
            shape = Wedge(axis=axis / np.linalg.norm(axis), tan_half_angle=float(np.tan(np.deg2rad(rng.uniform(*WEDGE_HALF_ANGLE_DEG)))),
                          outward=0.25, noise=outline_noise(rng, 2.0), roughness=float(rng.uniform(0.05, 0.12)))
            scale_range = (2.0, 110.0)
        else:
            centre = choose_voxel(rng, first_nonempty(
                (tissue >= 0.8) & brain & hemisphere(subject, side, 10.0) & height_between(subject, -20, 60),
                (tissue >= 0.8) & brain, tissue >= 0.5))
            radii = rng.uniform(0.7, 1.3, 3)
            shape = IrregularEllipsoid(radii=tuple(radii / radii.mean()), rotation=random_rotation(rng),
                                       noise=outline_noise(rng, 2.0), roughness=float(rng.uniform(0.1, 0.25)))
            scale_range = (1.0, 60.0)
        gliosis_look = {"T1": Appearance("mul", float(rng.uniform(0.75, 0.9))), "T2": Appearance("mul", float(rng.uniform(1.25, 1.6)))}
        cavity_look = _cavity_look(rng)
        gliosis_mm = float(rng.uniform(*GLIOSIS_MM))
        completeness = float(rng.uniform(0.75, 1.0))

        scale = fit_scale(shape, centre, spacing, tissue, volume_ml * 1000.0 / spacing ** 3, scale_range)
        box, phi = signed_distance(shape, centre, scale, spacing, subject.shape)
        equivalent_radius = (3.0 * volume_ml * 1000.0 / (4.0 * np.pi)) ** (1.0 / 3.0)
        gliosis_mm = min(gliosis_mm, 0.35 * equivalent_radius)
        outer = partial_volume(phi, spacing) * tissue[box]
        cavity = partial_volume(phi + gliosis_mm, spacing) * tissue[box]
        axes = [np.arange(b.start, b.stop) * spacing for b in box]
        patchiness = random_smooth_field(rng, [a[0] for a in axes], [a[-1] for a in axes], 6.0).on_grid(axes)[0]
        strength = np.clip(completeness + 0.15 * patchiness, 0.45, 1.0).astype(np.float32)

        lesion = Lesion(kind=self.kind)
        coverage = np.zeros(subject.shape, np.float32)
        lesion.add(Compartment("cavity", LABEL, box, cavity, cavity_look, strength), coverage)
        lesion.add(Compartment("gliosis", LABEL, box, np.maximum(outer - cavity, 0.0), gliosis_look), coverage)
        lacunes = self._lacunes(rng, subject, lesion, coverage)
        lesion.info = {
            "shape": "wedge" if wedge else "blob", "hemisphere": "right" if side > 0 else "left",
            "target_volume_ml": round(volume_ml, 2), "scale_mm": round(scale, 1),
            "centre_mni": [round(float(v), 1) for v in subject.mni[(slice(None), *centre)]],
            "lacunes": lacunes, "volumes_ml": {c.name: round(c.volume_ml(spacing), 2) for c in lesion.compartments[:2]},
        }
        return lesion

    @staticmethod
    def _lacunes(rng: np.random.Generator, subject: SubjectAnatomy, lesion: Lesion, coverage: np.ndarray) -> int:
        """0 (half the time) or 1-3 small CSF-like cavities in deep tissue; returns how many were kept."""
        count = int(rng.integers(1, 4)) if rng.uniform() < P_LACUNES else 0
        deep = (subject.tissue >= 0.7) & cerebrum(subject) & (subject.depth_mm >= 20.0)
        candidates = first_nonempty(deep & height_between(subject, -15, 35) & (np.abs(subject.mni[0]) >= 8), deep,
                                    subject.tissue >= 0.5)
        kept = 0
        for _ in range(count):
            centre = choose_voxel(rng, candidates)
            radii = rng.uniform(0.7, 1.3, 3)
            shape = IrregularEllipsoid(radii=tuple(radii / radii.mean()), rotation=random_rotation(rng),
                                       noise=outline_noise(rng, 2.0), roughness=0.05)
            diameter = float(rng.uniform(*LACUNE_DIAMETER_MM))
            look = {"T1": Appearance("csf", float(rng.uniform(1.0, 1.3))), "T2": Appearance("csf", float(rng.uniform(0.8, 1.0)))}
            box, phi = signed_distance(shape, centre, diameter / 2.0, subject.spacing, subject.shape)
            fraction = partial_volume(phi, subject.spacing) * subject.tissue[box]
            fraction = np.minimum(fraction, 1.0 - coverage[box])
            if fraction.max() >= LABEL_COVERAGE:  # too small to be seen at this spacing: skip it
                lesion.add(Compartment("lacune", LABEL, box, fraction, look), coverage)
                kept += 1
        return kept
