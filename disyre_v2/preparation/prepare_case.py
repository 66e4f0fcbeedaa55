"""One scan onto the template: (bias correction) → registration → every channel, the brain mask and
the label on the template's grid, with the forward transform kept for the way back.

Steps, in the order of the UPD preprocessing the paper's data went through:
1. each channel is read on its own grid; optional N4 bias-field correction;
2. the first channel is registered to the template (rigid, then affine); every other channel is
   registered rigidly to the first and its transform composed with the first's, so all channels land
   on the template together;
3. images are resampled linearly onto the template's grid, the brain mask and the label with nearest
   neighbour; the mask is the given brain mask, or the first channel's non-zero voxels (a scan whose
   skull is already removed).
A brain whose volume on the template grid is far from the template's, or a registration that
``check_registration`` refuses, is an error naming the scan.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import SimpleITK as sitk

from disyre_v2.errors import UserError
from disyre_v2.imageio.reader import read_sitk_image
from disyre_v2.preparation.bias_field import correct_bias_field
from disyre_v2.preparation.registration import check_registration, register, resample_onto
from disyre_v2.preparation.template import Template, mask_volume_ml

# Registered brain volume ÷ the template's: an adult brain lies well inside this range; outside it
# the registration or the mask is wrong.
BRAIN_VOLUME_RATIO_RANGE = (0.6, 1.6)


@dataclass
class PreparedScan:
    images: list[sitk.Image]  # one per channel, float32, on the template grid
    brain: sitk.Image  # uint8 on the template grid
    label: sitk.Image | None  # on the template grid (nearest neighbour)
    transform: sitk.Transform  # template point -> first channel's native point
    metric: float


def prepare_scan(channel_paths: Sequence[Path | str], template: Template, *, mask_path: Path | str | None = None,
                 label_path: Path | str | None = None, bias_correction: bool = False, seed: int = 0) -> PreparedScan:
    """Bring one case (its channel files, optional brain mask and label) onto ``template``."""
    if not channel_paths:
        raise ValueError("prepare_scan needs at least one channel file.")
    name = str(channel_paths[0])
    channels = [sitk.Cast(read_sitk_image(path), sitk.sitkFloat32) for path in channel_paths]
    brain = (sitk.Cast(read_sitk_image(mask_path) > 0, sitk.sitkUInt8) if mask_path is not None
             else sitk.Cast(channels[0] > 0, sitk.sitkUInt8))
    if not sitk.GetArrayViewFromImage(brain).any():
        raise UserError("the brain mask is empty", mask_path or name,
                        "give the scan's brain mask, or a skull-stripped scan whose brain is non-zero")
    if bias_correction:
        channels = [correct_bias_field(channel, scan=str(path)) for channel, path in zip(channels, channel_paths)]
    fixed_mask = template.brain if template.whole_head and mask_path is not None else None
    # Against a skull-stripped template, register the scan's brain only.
    moving = channels[0] if template.whole_head else channels[0] * sitk.Cast(brain, sitk.sitkFloat32)
    registration = register(template.image, moving, fixed_mask=fixed_mask, seed=seed, scan=name)
    check_registration(registration, name)
    transforms: list[sitk.Transform] = [registration.transform]
    for channel, path in zip(channels[1:], channel_paths[1:]):
        # Template -> first channel (affine), then first channel -> this channel (rigid).
        to_first = register(channels[0], channel, rigid_only=True, seed=seed, scan=str(path)).transform
        transforms.append(sitk.CompositeTransform([to_first, registration.transform]))
    images = [resample_onto(channel, template.image, transform) for channel, transform in zip(channels, transforms)]
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
    return PreparedScan(masked, brain_on_template, label, registration.transform, registration.metric)


def to_native(image_on_template: sitk.Image, native_reference: sitk.Image, transform: sitk.Transform, *,
              labels: bool = False) -> sitk.Image:
    """A template-space image (an anomaly map, say) back on the scan's own grid: the inverse of the
    forward transform (affine: exact)."""
    return resample_onto(image_on_template, native_reference, transform.GetInverse(), labels=labels)
