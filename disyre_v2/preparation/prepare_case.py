"""One scan onto the template: reorientation → (bias correction) → skull stripping → registration →
every channel, the brain mask and the label on the template's grid, with the forward transform kept
for the way back.

Steps, in the order of the UPD preprocessing the paper's data went through:
1. each channel is read and its voxel axes reordered to the template's orientation; optional N4
   bias-field correction;
2. the brain: a given mask file, ROBEX's mask, the template's mask carried back through a
   whole-head registration, or (already stripped scans) the first channel's non-zero voxels;
3. the first channel is registered to the template (rigid, then affine): its brain onto the
   template's brain, or, for template skull stripping, its head onto the template's head; every other channel is
   registered rigidly to the first and its transform composed with the first's, so all channels land
   on the template together;
4. images are resampled linearly onto the template's grid, the brain mask and the label with nearest
   neighbour.
A brain whose volume on the template grid is far from the template's, or a registration that
``check_registration`` refuses, is an error naming the scan.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import SimpleITK as sitk

from disyre_v2.errors import UserError
from disyre_v2.imageio.geometry import Geometry, check_same_grid
from disyre_v2.imageio.reader import read_sitk_image
from disyre_v2.preparation.bias_field import correct_bias_field
from disyre_v2.preparation.registration import check_registration, register, resample_onto
from disyre_v2.preparation.skull_strip import SKULL_STRIP_MODES, check_brain, robex_mask
from disyre_v2.preparation.template import Template, mask_volume_ml

# Registered brain volume ÷ the template's: an adult brain lies well inside this range; outside it
# the registration or the mask is wrong.
BRAIN_VOLUME_RATIO_RANGE = (0.6, 1.6)


@dataclass
class PreparedScan:
    images: list[sitk.Image]  # one per channel, float32, on the template grid, 0 outside the brain
    brain: sitk.Image  # uint8 on the template grid
    label: sitk.Image | None  # on the template grid (nearest neighbour)
    metric: float
    head: sitk.Image  # the first channel on the template grid before masking (for the QA figure)
    native_grid: sitk.Image  # an empty image with the first channel file's own grid (the way back)
    brain_volume_ratio: float
    native_brain: sitk.Image  # the brain mask on the first channel's grid (reoriented like the template)
    channel_transforms: list[sitk.Transform]  # per channel: template point -> that channel's native point

    @property
    def transform(self) -> sitk.Transform:
        """Template point -> first channel's native point (the one stored as CASE.tfm)."""
        return self.channel_transforms[0]


def reorient_like(image: sitk.Image, reference: sitk.Image) -> sitk.Image:
    """``image`` with its voxel axes in ``reference``'s orientation (an IXI scan stored sagittally
    becomes axial like the template). Only the storage order changes: every voxel keeps its physical
    point, so transforms and the way back to the file's own grid are unaffected."""
    orientation = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(reference.GetDirection())
    return sitk.DICOMOrient(image, orientation)


def empty_like(image: sitk.Image) -> sitk.Image:
    grid = sitk.Image(image.GetSize(), sitk.sitkUInt8)
    grid.CopyInformation(image)
    return grid


def prepare_scan(channel_paths: Sequence[Path | str], template: Template, *, mask_path: Path | str | None = None,
                 label_path: Path | str | None = None, bias_correction: bool = False, skull_strip: str = "none",
                 seed: int = 0) -> PreparedScan:
    """Bring one case (its channel files, optional brain mask and label) onto ``template``.

    ``skull_strip`` finds the brain of a whole-head scan (``robex``, ``template``) or takes the scan
    as already stripped (``none``); a given brain mask file is used as it is in every mode."""
    if not channel_paths:
        raise ValueError("prepare_scan needs at least one channel file.")
    if skull_strip not in SKULL_STRIP_MODES:
        raise ValueError(f"unknown skull stripping {skull_strip!r}; choose one of {', '.join(SKULL_STRIP_MODES)}")
    if skull_strip == "template" and not template.whole_head:
        raise UserError(f"--skull_strip template needs a whole-head template with a brain mask; {template.name} "
                        f"is skull-stripped", template.name,
                        "give --template HEAD.nii.gz --template_mask BRAIN.nii.gz, or use --skull_strip robex")
    name = str(channel_paths[0])
    originals = [read_sitk_image(path) for path in channel_paths]
    native_grid = empty_like(originals[0])
    channels = [reorient_like(sitk.Cast(image, sitk.sitkFloat32), template.image) for image in originals]
    if bias_correction:
        channels = [correct_bias_field(channel, scan=str(path)) for channel, path in zip(channels, channel_paths)]
    registration = None
    if mask_path is not None:
        mask_image = read_sitk_image(mask_path)
        check_same_grid(Geometry.from_image(originals[0]), Geometry.from_image(mask_image), name, mask_path)
        brain = reorient_like(sitk.Cast(mask_image > 0, sitk.sitkUInt8), template.image)
        brain.CopyInformation(channels[0])  # equal within the tolerance of NIfTI's float32 header
        brain = check_brain(brain, str(mask_path), "the mask file")
    elif skull_strip == "robex":
        brain = check_brain(robex_mask(channels[0], seed=seed, scan=name), name, "ROBEX")
    elif skull_strip == "template":
        # The whole head against the whole-head template; its brain mask comes back with the inverse.
        registration = register(template.image, channels[0], seed=seed, scan=name)
        check_registration(registration, name)
        brain = check_brain(to_native(template.brain, channels[0], registration.transform, labels=True), name,
                            "the template")
    else:
        brain = check_brain(sitk.Cast(channels[0] > 0, sitk.sitkUInt8), name, "the scan's non-zero voxels "
                            "(--skull_strip none takes the scan as already skull-stripped)")
    if registration is None:
        # The scan's brain is known: brain onto the template's brain, as the UPD preprocessing does
        # (skull stripping first). Registering the head with the metric masked to the template's brain
        # diverged on whole heads whose anatomy differs from the template's (mutual information 0.26).
        fixed = sitk.Mask(template.image, template.brain) if template.whole_head else template.image
        moving = channels[0] * sitk.Cast(brain, sitk.sitkFloat32)
        registration = register(fixed, moving, seed=seed, scan=name)
        check_registration(registration, name)
    transforms: list[sitk.Transform] = [registration.transform]
    for channel, path in zip(channels[1:], channel_paths[1:]):
        # Template -> first channel (affine), then first channel -> this channel (rigid).
        to_first = register(channels[0], channel, rigid_only=True, seed=seed, scan=str(path)).transform
        transforms.append(sitk.CompositeTransform([to_first, registration.transform]))  # applied last to first
    images = [resample_onto(channel, template.image, transform) for channel, transform in zip(channels, transforms)]
    if skull_strip == "template" and mask_path is None:
        brain_on_template = sitk.Cast(template.brain, sitk.sitkUInt8)
    else:
        brain_on_template = resample_onto(brain, template.image, registration.transform, labels=True)
    ratio = mask_volume_ml(brain_on_template) / template.brain_volume_ml
    low, high = BRAIN_VOLUME_RATIO_RANGE
    if not low <= ratio <= high:
        raise UserError(f"after registration the brain holds {ratio:.2f}× the template's brain volume "
                        f"(plausible: {low}-{high})", mask_path or name,
                        "check the brain mask (for a whole head, a skull-stripping mode is needed) and the scan")
    label = None
    if label_path is not None:
        label = resample_onto(read_sitk_image(label_path), template.image, registration.transform, labels=True)
    masked = [sitk.Mask(image, brain_on_template) for image in images]
    return PreparedScan(masked, brain_on_template, label, registration.metric, images[0], native_grid, ratio, brain,
                        transforms)


def to_native(image_on_template: sitk.Image, native_reference: sitk.Image, transform: sitk.Transform, *,
              labels: bool = False) -> sitk.Image:
    """A template-space image (an anomaly map, say) back on the scan's own grid: the inverse of the
    forward transform (affine: exact)."""
    return resample_onto(image_on_template, native_reference, transform.GetInverse(), labels=labels)
