"""N4 bias-field correction (SimpleITK's N4BiasFieldCorrectionImageFilter), as UPD-style preprocessing
does before skull stripping and registration.

N4 is fitted on a copy shrunk by ``shrink`` per axis (the field is smooth; fitting at full resolution
costs 8-60x more for the same field) and the fitted log field is evaluated on the full grid, so the
correction is applied at full resolution.

Without a mask, N4 is fitted inside the head: the voxels above the Otsu threshold of the scan (which
separates the air, noisy or exactly 0, from the head), with enclosed holes filled. ``image > 0`` is no
head mask on a scan whose air holds noise: there it takes nearly every voxel.
"""
from __future__ import annotations

import SimpleITK as sitk

from disyre_v2.errors import UserError

DEFAULT_SHRINK = 4
ITERATIONS_PER_LEVEL = (50, 50, 30, 20)
OTSU_BINS = 256


def default_mask(image: sitk.Image) -> sitk.Image:
    """The head (uint8, 1 inside): voxels > 0 above the Otsu threshold of ``image``, holes filled."""
    image = sitk.Cast(image, sitk.sitkFloat32)
    above = sitk.OtsuThreshold(image, 0, 1, OTSU_BINS)  # 0 below the threshold (the air), 1 above
    head = sitk.BinaryFillhole(sitk.Cast(above, sitk.sitkUInt8), fullyConnected=False, foregroundValue=1)
    return sitk.Cast(sitk.And(head, sitk.Cast(image > 0, sitk.sitkUInt8)), sitk.sitkUInt8)


def correct_bias_field(image: sitk.Image, mask: sitk.Image | None = None, *, shrink: int = DEFAULT_SHRINK,
                       scan: str = "the scan") -> sitk.Image:
    """``image`` (float32) divided by the N4 bias field fitted inside ``mask`` (default:
    :func:`default_mask`, the head without the air)."""
    image = sitk.Cast(image, sitk.sitkFloat32)
    if mask is None:
        mask = default_mask(image)
    mask = sitk.Cast(mask > 0, sitk.sitkUInt8)
    factors = [max(1, min(shrink, size // 16)) for size in image.GetSize()]  # keep at least 16 voxels
    small_image, small_mask = sitk.Shrink(image, factors), sitk.Shrink(mask, factors)
    if not sitk.GetArrayViewFromImage(small_mask).any():
        raise UserError("the bias-field correction found no foreground voxel", scan,
                        "check the scan (is it empty?) or its brain mask")
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations(list(ITERATIONS_PER_LEVEL))
    n4.Execute(small_image, small_mask)
    log_field = n4.GetLogBiasFieldAsImage(image)
    return sitk.Cast(image / sitk.Exp(log_field), sitk.sitkFloat32)
