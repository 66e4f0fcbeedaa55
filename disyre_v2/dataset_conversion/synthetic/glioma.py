"""BraTS-like glioma: irregular core with necrosis and an enhancing rim, edema that follows white matter.

Labels follow BraTS: 1 necrosis / non-enhancing core, 2 edema, 4 enhancing tumour. Intensities are
those of native (pre-contrast) T1 and T2: every compartment is T1-hypointense and T2-hyperintense
relative to white matter; necrosis approaches CSF. The tumour pushes the surrounding tissue outwards
(a radial expansion of the subject's deformation, so the displaced anatomy stays anatomy).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from disyre_v2.dataset_conversion.synthetic.deformation import RadialExpansion
from disyre_v2.dataset_conversion.synthetic.lesions import (
    Appearance, Compartment, Lesion, Placement, box_around, choose_voxel, partial_volume,
)
from disyre_v2.dataset_conversion.synthetic.regions import cerebrum, first_nonempty, height_between, hemisphere
from disyre_v2.dataset_conversion.synthetic.shapes import IrregularEllipsoid, outline_noise, random_rotation, signed_distance
from disyre_v2.dataset_conversion.synthetic.smooth_field import random_smooth_field
from disyre_v2.dataset_conversion.synthetic.subject_anatomy import SubjectAnatomy

CORE_RADIUS_MM = (8.0, 22.0)
MASS_EFFECT_GAMMA = (0.15, 0.35)  # "mild": the core's surroundings move by 0.1-0.3 core radii
RIM_MM = (2.0, 5.0)
EDEMA_REACH_MM = (5.0, 25.0)
P_ENHANCING = 0.85
P_NECROSIS = 0.7  # given an enhancing rim
LABEL_CORE, LABEL_EDEMA, LABEL_ENHANCING = 1, 2, 4


def _appearance(rng: np.random.Generator, t1: tuple[float, float], t2: tuple[float, float]) -> dict:
    return {"T1": Appearance("wm", float(rng.uniform(*t1))), "T2": Appearance("wm", float(rng.uniform(*t2)))}


class GliomaModel:
    kind = "brats"

    def place(self, rng: np.random.Generator, subject: SubjectAnatomy) -> Placement:
        side = int(rng.choice([-1, 1]))
        radius = float(rng.uniform(*CORE_RADIUS_MM))
        gamma = float(rng.uniform(*MASS_EFFECT_GAMMA))
        brain = cerebrum(subject)
        deep_wm = (subject.wm >= 0.7) & brain & (subject.depth_mm >= max(12.0, 0.6 * radius))
        candidates = first_nonempty(deep_wm & hemisphere(subject, side, 12.0) & height_between(subject, -25, 55),
                                    deep_wm, (subject.wm >= 0.5) & brain, subject.brain >= 0.5)
        centre = choose_voxel(rng, candidates)
        centre_mm = tuple(float((b.start + c) * subject.spacing) for b, c in zip(subject.box, centre))
        expansion = RadialExpansion(centre_mm=centre_mm, gamma=gamma, sigma_mm=1.3 * radius)
        return Placement(centre_vox=centre, expansion=expansion,
                         params={"radius_mm": radius, "mass_effect_gamma": gamma})

    def draw(self, rng: np.random.Generator, subject: SubjectAnatomy, placement: Placement) -> Lesion:
        radius = placement.params["radius_mm"]
        centre, spacing = placement.centre_vox, subject.spacing
        radii = rng.uniform(0.75, 1.25, 3)
        core_shape = IrregularEllipsoid(radii=tuple(radii / radii.mean()), rotation=random_rotation(rng),
                                        noise=outline_noise(rng, 2.0), roughness=float(rng.uniform(0.12, 0.25)))
        rim = min(float(rng.uniform(*RIM_MM)), 0.45 * radius)
        enhancing = rng.uniform() < P_ENHANCING
        necrotic = enhancing and rng.uniform() < P_NECROSIS
        looks = {
            "necrosis": _appearance(rng, (0.30, 0.45), (2.0, 2.6)),
            "solid": _appearance(rng, (0.55, 0.70), (1.7, 2.2)),
            "enhancing": _appearance(rng, (0.60, 0.80), (1.5, 1.9)),
            "edema": _appearance(rng, (0.70, 0.85), (1.8, 2.4)),
        }
        reach = float(rng.uniform(*EDEMA_REACH_MM))
        edema_strength = float(rng.uniform(0.8, 1.0))

        box, phi = signed_distance(core_shape, centre, radius, spacing, subject.shape)
        brain = subject.brain[box]
        core = partial_volume(phi, spacing) * brain  # the core displaces tissue and CSF alike
        inner = partial_volume(phi + rim, spacing) * brain if enhancing else core
        lesion = Lesion(kind=self.kind)
        coverage = np.zeros(subject.shape, np.float32)
        inner_name = "necrosis" if necrotic else "solid"
        lesion.add(Compartment(inner_name, LABEL_CORE, box, inner, looks[inner_name]), coverage)
        if enhancing:
            lesion.add(Compartment("enhancing", LABEL_ENHANCING, box, np.maximum(core - inner, 0.0), looks["enhancing"]), coverage)

        # Edema: grows from the core through white matter only (a geodesic distance), with an
        # irregular reach; its signal fades with distance from the core.
        edema_box = box_around(centre, (core_shape.extent * radius + reach) / spacing + 2, subject.shape)
        seeds = np.zeros([b.stop - b.start for b in edema_box], bool)
        inner_slices = tuple(slice(b.start - e.start, b.stop - e.start) for b, e in zip(box, edema_box))
        seeds[inner_slices] = core >= 0.5
        allowed = (subject.wm[edema_box] >= 0.4) & (subject.tissue[edema_box] >= 0.6)
        axes = [np.arange(b.start, b.stop) * spacing for b in edema_box]
        wobble = random_smooth_field(rng, [a[0] for a in axes], [a[-1] for a in axes], 10.0).on_grid(axes)[0]
        steps = _geodesic_steps(seeds, allowed, int(np.ceil(1.5 * reach / spacing)))
        distance = steps * np.float32(spacing)
        edema_region = (steps > 0) & (distance <= reach * (1.0 + 0.35 * wobble))
        soft = ndimage.gaussian_filter(edema_region.astype(np.float32), 0.5, truncate=2.0)
        edema = soft * np.clip(1.5 * subject.tissue[edema_box], 0.0, 1.0)
        strength = np.clip(edema_strength - 0.25 * distance / reach + 0.1 * wobble, 0.5, 1.0).astype(np.float32)
        lesion.add(Compartment("edema", LABEL_EDEMA, edema_box, edema, looks["edema"], strength), coverage)

        lesion.info = {
            "centre_mni": [round(float(v), 1) for v in subject.mni[(slice(None), *centre)]],
            "core_radius_mm": round(radius, 1), "mass_effect_gamma": round(placement.params["mass_effect_gamma"], 3),
            "enhancing": bool(enhancing), "necrotic": bool(necrotic), "edema_reach_mm": round(reach, 1),
            "volumes_ml": {c.name: round(c.volume_ml(spacing), 2) for c in lesion.compartments},
        }
        return lesion


def _geodesic_steps(seeds: np.ndarray, allowed: np.ndarray, max_steps: int) -> np.ndarray:
    """Number of 18-connected dilation steps from ``seeds`` through ``allowed`` (0 = seed or unreached)."""
    structure = ndimage.generate_binary_structure(3, 2)
    steps = np.zeros(seeds.shape, np.int16)
    reached = seeds.copy()
    for step in range(1, max_steps + 1):
        grown = ndimage.binary_dilation(reached, structure, mask=allowed)
        new = grown & ~reached
        if not new.any():
            break
        steps[new] = step
        reached |= grown
    return steps
