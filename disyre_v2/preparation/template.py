"""The template every scan is registered to: MNI152 2009a from nilearn by default, or a file.

The default is the 1 mm ICBM152 2009a symmetric T1 that ships with nilearn (already a dependency; no
download): it is skull-stripped, so its brain mask is its non-zero voxels and it suits scans whose
skull is already removed. Any other template is a NIfTI file, with its brain mask as a second file
(whole-head templates need one) or, without it, its non-zero voxels.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from disyre_v2.errors import UserError
from disyre_v2.imageio.errors import ImageFormatError
from disyre_v2.imageio.reader import read_sitk_image
from disyre_v2.preparation.mni152 import template_paths

DEFAULT_TEMPLATE = "mni152_2009a"


@dataclass
class Template:
    name: str
    image: sitk.Image  # float32
    brain: sitk.Image  # uint8, 1 inside the brain
    whole_head: bool  # False: the template is skull-stripped (brain = its non-zero voxels)

    @property
    def brain_volume_ml(self) -> float:
        return mask_volume_ml(self.brain)


def mask_volume_ml(mask: sitk.Image) -> float:
    """Volume of a mask's non-zero voxels in millilitres."""
    voxel_ml = float(np.prod(mask.GetSpacing())) / 1000.0
    return float(np.count_nonzero(sitk.GetArrayViewFromImage(mask))) * voxel_ml


def load_template(name_or_path: str | Path = DEFAULT_TEMPLATE, mask_path: str | Path | None = None) -> Template:
    """``mni152_2009a`` (nilearn's file) or a template file, with an optional brain-mask file."""
    if str(name_or_path) == DEFAULT_TEMPLATE:
        path = template_paths()["t1"]
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise UserError("the template file does not exist", path,
                            f"give an existing NIfTI file, or --template {DEFAULT_TEMPLATE}")
    try:
        image = sitk.Cast(read_sitk_image(path), sitk.sitkFloat32)
    except ImageFormatError as error:
        raise UserError(f"the template cannot be used: {error}", path, "give a 3D NIfTI template") from None
    if mask_path is None:
        brain = sitk.Cast(image > 0, sitk.sitkUInt8)
        whole_head = False
    else:
        mask_path = Path(mask_path)
        if not mask_path.is_file():
            raise UserError("the template's brain mask does not exist", mask_path, "give an existing mask file")
        brain = sitk.Cast(read_sitk_image(mask_path) > 0, sitk.sitkUInt8)
        if brain.GetSize() != image.GetSize() or not np.allclose(brain.GetSpacing(), image.GetSpacing()):
            raise UserError("the template's brain mask is not on the template's grid", mask_path,
                            "give the mask that belongs to the template")
        brain.CopyInformation(image)
        whole_head = True
    if not sitk.GetArrayViewFromImage(brain).any():
        raise UserError("the template's brain mask is empty", mask_path or path, "give a template with a brain")
    return Template(str(name_or_path), image, brain, whole_head)
