"""Affine registration of a scan to a template with SimpleITK (the UPD preprocessing's alignment step).

Mattes mutual information (so T1, T2 or FLAIR register to a T1 template alike), three resolutions
(shrink 4, 2, 1 with smoothing 2, 1, 0 voxels), a rigid stage started from the images' centres of
mass, then a full affine stage started from the rigid result. The result maps points of the
template (fixed) space to the scan (moving) space, ITK's convention: resampling the scan with it
puts the scan on the template grid, and its inverse carries template-space maps back to the scan.

A registration can fail without an exception (a volume that is not a head, a bad start): the result
carries the final metric value and the transform's scale (determinant), and ``check_registration``
refuses a result outside plausible bounds, naming the scan. ITK's own exceptions (an empty image)
become the same one-line error.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from disyre_v2.errors import UserError
from disyre_v2.imageio.errors import itk_reason

SHRINK_FACTORS = (4, 2, 1)
SMOOTHING_SIGMAS = (2.0, 1.0, 0.0)  # voxels of each level
HISTOGRAM_BINS = 50
SAMPLING_PERCENTAGE = 0.2
ITERATIONS = 300
# Regular-step gradient descent: measured on the MNI brain warped by random affines (rotation
# <= 15 degrees, translation <= 20 mm, scale 0.9-1.1 per axis), it recovers the alignment to 0.2 mm
# where plain gradient descent with the same scales stalled 7-24 mm off.
MAX_STEP_MM, MIN_STEP_MM, RELAXATION = 2.0, 1e-3, 0.7
# Plausible bounds of an adult head against an adult template: volume ratio of the affine (its
# determinant) and the mutual information reached (Mattes' value is -MI: lower is better).
DETERMINANT_RANGE = (0.5, 2.0)
MAX_METRIC = -0.3  # a good same-modality alignment reaches about -1.1, diverged ones -0.2 to -0.4


@dataclass
class Registration:
    transform: sitk.Transform  # template (fixed) point -> scan (moving) point
    metric: float  # final Mattes metric value (negative mutual information)
    determinant: float  # volume scaling of the affine part

    def matrix(self) -> np.ndarray:
        """The 3×3 linear part of the (composite) transform at the template's centre."""
        return _linear_part(self.transform)


def _linear_part(transform: sitk.Transform) -> np.ndarray:
    point = np.zeros(3)
    base = np.array(transform.TransformPoint(tuple(point)))
    columns = [np.array(transform.TransformPoint(tuple(point + np.eye(3)[i]))) - base for i in range(3)]
    return np.stack(columns, axis=1)


def _optimise(transform: sitk.Transform, fixed: sitk.Image, moving: sitk.Image, fixed_mask: sitk.Image | None,
              seed: int) -> float:
    """Optimise ``transform`` in place; returns the final metric value."""
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=HISTOGRAM_BINS)
    method.SetMetricSamplingStrategy(method.RANDOM)
    # SimpleITK reads seed 0 as "seed from the wall clock": shift by one to stay reproducible.
    method.SetMetricSamplingPercentage(SAMPLING_PERCENTAGE, seed + 1)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(MAX_STEP_MM, MIN_STEP_MM, ITERATIONS, relaxationFactor=RELAXATION)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel(list(SHRINK_FACTORS))
    method.SetSmoothingSigmasPerLevel(list(SMOOTHING_SIGMAS))
    if fixed_mask is not None:
        method.SetMetricFixedMask(sitk.Cast(fixed_mask > 0, sitk.sitkUInt8))
    method.SetInitialTransform(transform, inPlace=True)
    method.Execute(fixed, moving)
    return float(method.GetMetricValue())


def register(fixed: sitk.Image, moving: sitk.Image, *, rigid_only: bool = False, fixed_mask: sitk.Image | None = None,
             seed: int = 0, scan: str = "the scan") -> Registration:
    """Rigid, then (unless ``rigid_only``) affine registration of ``moving`` onto ``fixed``. ITK's own
    failures (an empty image, a scan that barely overlaps the template) become an error naming ``scan``."""
    try:
        return _register(fixed, moving, rigid_only, fixed_mask, seed)
    except RuntimeError as error:
        size = "×".join(str(n) for n in moving.GetSize())
        raise UserError(f"the registration to the template failed for a scan of {size} voxels ({itk_reason(error)})",
                        scan, "check that the file is a brain MRI volume with content, in a known orientation "
                        "(a volume of a few voxels per axis is too small)") from None


def _register(fixed: sitk.Image, moving: sitk.Image, rigid_only: bool, fixed_mask: sitk.Image | None,
              seed: int) -> Registration:
    fixed = sitk.Cast(fixed, sitk.sitkFloat32)
    moving = sitk.Cast(moving, sitk.sitkFloat32)
    rigid = sitk.CenteredTransformInitializer(fixed, moving, sitk.Euler3DTransform(),
                                              sitk.CenteredTransformInitializerFilter.MOMENTS)
    metric = _optimise(rigid, fixed, moving, fixed_mask, seed)
    result: sitk.Transform = rigid
    if not rigid_only:
        result = sitk.AffineTransform(3)
        result.SetCenter(rigid.GetCenter())
        result.SetMatrix(rigid.GetMatrix())
        result.SetTranslation(rigid.GetTranslation())
        metric = _optimise(result, fixed, moving, fixed_mask, seed)
    return Registration(result, metric, float(np.linalg.det(_linear_part(result))))


def check_registration(registration: Registration, scan: str) -> None:
    """Refuse a registration that cannot be right (diverged, or the scan is no head)."""
    low, high = DETERMINANT_RANGE
    if not low <= registration.determinant <= high:
        raise UserError(f"the registration to the template scaled the head by {registration.determinant:.2f} "
                        f"in volume (plausible: {low}-{high}): it diverged or the scan is not a head", scan,
                        "check the scan (is it a whole head or brain, of this modality?) and its orientation")
    if registration.metric > MAX_METRIC:
        raise UserError(f"the registration to the template reached a mutual information of only "
                        f"{-registration.metric:.3f} (at least {-MAX_METRIC} expected): the scan does not match "
                        f"the template's anatomy", scan,
                        "check that the scan is a brain MRI and, for whole heads, choose --skull_strip")


def resample_onto(image: sitk.Image, reference: sitk.Image, transform: sitk.Transform, *, labels: bool = False
                  ) -> sitk.Image:
    """``image`` on ``reference``'s grid through ``transform`` (reference point -> image point):
    linear for intensities (float32), nearest neighbour for masks and labels; 0 outside."""
    interpolator = sitk.sitkNearestNeighbor if labels else sitk.sitkLinear
    pixel = image.GetPixelID() if labels else sitk.sitkFloat32
    source = image if labels else sitk.Cast(image, sitk.sitkFloat32)
    return sitk.Resample(source, reference, transform, interpolator, 0.0, pixel)
