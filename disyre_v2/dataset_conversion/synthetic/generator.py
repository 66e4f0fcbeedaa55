"""One synthetic subject from its seed: anatomy -> (lesion) -> contrast -> acquisition.

Each case draws from four independent random streams spawned from (dataset seed, split, index):
anatomy, lesion, contrast and acquisition. A test case rendered without its lesion
(``render_lesion=False``) therefore differs from the real one only where the lesion is: that is
how the tests check that the labels mark exactly the voxels the lesion changed.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

from disyre_v2.dataset_conversion.synthetic.acquisition import (ACQUISITIONS, acquire, brain_mask_with_errors,
                                                                sample_acquisition)
from disyre_v2.dataset_conversion.synthetic.anatomy import load_template_anatomy
from disyre_v2.dataset_conversion.synthetic.atrophy import sample_atrophy
from disyre_v2.dataset_conversion.synthetic.contrast import CHANNELS, lesion_change, render_healthy, sample_contrast
from disyre_v2.dataset_conversion.synthetic.deformation import sample_deformation
from disyre_v2.dataset_conversion.synthetic.glioma import GliomaModel
from disyre_v2.dataset_conversion.synthetic.lesions import finalise
from disyre_v2.dataset_conversion.synthetic.stroke import StrokeModel
from disyre_v2.dataset_conversion.synthetic.subject_anatomy import grid_axes_mm, warp_template
from disyre_v2.dataset_conversion.synthetic.subtle import SubtleModel
from disyre_v2.imageio.geometry import Geometry

LESION_MODELS = {"brats": GliomaModel(), "atlas": StrokeModel(), "subtle": SubtleModel()}
KINDS = tuple(LESION_MODELS)
HEALTHY = "healthy"
SPLITS = {"Tr": 0, "Ts": 1}


@dataclass(frozen=True)
class CaseSpec:
    case_id: str
    split: str  # "Tr" (healthy training case) or "Ts" (test case)
    index: int  # position within its split
    kind: str  # HEALTHY or one of KINDS
    seed: int  # the dataset seed
    spacing: int = 2
    acquisition: str = "default"  # a name of ACQUISITIONS: the site's scanner settings

    def streams(self) -> list[np.random.Generator]:
        """Independent generators for anatomy, lesion, contrast and acquisition."""
        sequence = np.random.SeedSequence(entropy=self.seed, spawn_key=(SPLITS[self.split], self.index))
        return [np.random.default_rng(child) for child in sequence.spawn(4)]


@dataclass
class SyntheticCase:
    spec: CaseSpec
    geometry: Geometry
    images: np.ndarray  # (2, Z, Y, X) float32: T1, T2
    mask: np.ndarray  # (Z, Y, X) uint8
    label: np.ndarray | None  # (Z, Y, X) uint8 for test cases, None for training cases
    info: dict = field(default_factory=dict)
    tissues: dict | None = None  # "gm", "wm", "csf" fractions on the full grid, when asked for


def generate_case(spec: CaseSpec, render_lesion: bool = True, keep_tissues: bool = False) -> SyntheticCase:
    """Build one subject. ``render_lesion=False`` gives the same subject without the lesion's
    intensities (same anatomy, mass effect, contrast and noise): its pseudo-healthy counterpart."""
    if spec.kind != HEALTHY and spec.kind not in LESION_MODELS:
        raise ValueError(f"Unknown lesion kind {spec.kind!r}; choose from {', '.join(KINDS)} or {HEALTHY}.")
    if spec.acquisition not in ACQUISITIONS:
        raise ValueError(f"Unknown acquisition {spec.acquisition!r}; choose from {', '.join(ACQUISITIONS)}.")
    with threadpool_limits(1):  # one BLAS thread: same floating-point result whatever the number of workers
        return _generate(spec, render_lesion, keep_tissues)


def _generate(spec: CaseSpec, render_lesion: bool, keep_tissues: bool) -> SyntheticCase:
    template = load_template_anatomy(spec.spacing)
    anatomy_rng, lesion_rng, contrast_rng, acquisition_rng = spec.streams()
    deformation = sample_deformation(anatomy_rng, template)
    atrophy = sample_atrophy(anatomy_rng)
    box = deformation.output_box(template)
    needs_regions = spec.kind != HEALTHY or atrophy is not None

    def subject_for(current):
        subject = warp_template(template, current, box, regions=needs_regions)
        return atrophy.apply(subject) if atrophy is not None else subject

    subject = subject_for(deformation)
    lesion = None
    if spec.kind != HEALTHY:
        model = LESION_MODELS[spec.kind]
        placement = model.place(lesion_rng, subject)
        if placement.expansion is not None:  # the mass effect reshapes the anatomy itself
            subject = subject_for(deformation.with_expansion(placement.expansion))
        lesion = model.draw(lesion_rng, subject, placement)

    contrast = sample_contrast(contrast_rng)
    images = render_healthy(subject, contrast)
    crop_label = None
    if lesion is not None:
        crop_label, change = finalise(lesion, lesion_change(images, lesion, contrast, subject.tissue_t1))
        if render_lesion:
            images += change

    axes = grid_axes_mm(box, template.spacing)
    acquisition = sample_acquisition(acquisition_rng, np.asarray(template.shape, float) * template.spacing,
                                     ACQUISITIONS[spec.acquisition])
    mask = brain_mask_with_errors(subject.brain, acquisition, axes)
    images = acquire(images, mask, acquisition, axes, acquisition_rng)

    full_images = np.zeros((len(CHANNELS), *template.shape), np.float32)
    full_images[(slice(None), *box)] = images
    full_mask = np.zeros(template.shape, np.uint8)
    full_mask[box] = mask
    label = None
    if spec.split == "Ts":
        label = np.zeros(template.shape, np.uint8)
        if crop_label is not None:
            label[box] = crop_label * mask  # nothing is lesion outside the brain mask
    info = {"kind": spec.kind, "atrophy": atrophy is not None,
            "warp_rms_mm": round(deformation.warp_rms_mm, 2), "scale": [round(float(s), 3) for s in deformation.scale]}
    if lesion is not None:
        info["lesion"] = lesion.info
        info["label_volume_ml"] = round(float(np.count_nonzero(label)) * template.spacing ** 3 / 1000.0, 3)
    tissues = None
    if keep_tissues:
        tissues = {}
        for name in ("gm", "wm", "csf"):
            tissues[name] = np.zeros(template.shape, np.float32)
            tissues[name][box] = getattr(subject, name)
    return SyntheticCase(spec=spec, geometry=template.geometry, images=full_images, mask=full_mask,
                         label=label, info=info, tissues=tissues)
