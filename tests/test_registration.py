"""Affine registration to a template (issue 12 groundwork), on real anatomy: the MNI152 brain that
ships with nilearn, warped by known transforms."""
import functools

import numpy as np
import pytest
import SimpleITK as sitk

from disyre_v2.preparation.mni152 import template_paths
from disyre_v2.errors import UserError
from disyre_v2.preparation.registration import check_registration, register, resample_onto


@functools.lru_cache(maxsize=1)
def template(spacing: float = 2.0) -> sitk.Image:
    t1 = sitk.ReadImage(str(template_paths()["t1"]), sitk.sitkFloat32)
    size = [int(round(n * s / spacing)) for n, s in zip(t1.GetSize(), t1.GetSpacing())]
    reference = sitk.Image(size, sitk.sitkFloat32)
    reference.SetSpacing((spacing,) * 3)
    reference.SetOrigin(t1.GetOrigin())
    reference.SetDirection(t1.GetDirection())
    return sitk.Resample(t1, reference, sitk.Transform(), sitk.sitkLinear, 0.0)


def brain_points(image: sitk.Image, every: int = 40) -> list:
    array = sitk.GetArrayFromImage(image)
    indices = np.argwhere(array > 0.05 * array.max())[::every, ::-1]
    return [image.TransformIndexToPhysicalPoint([int(i) for i in index]) for index in indices]


def known_affine(seed: int, rigid: bool = False) -> sitk.AffineTransform:
    """Rotation up to 15 degrees per axis, translation up to 20 mm, scale 0.9-1.1 per axis."""
    rng = np.random.default_rng(seed)
    rotation = sitk.Euler3DTransform()
    rotation.SetRotation(*np.deg2rad(rng.uniform(-15, 15, 3)))
    scale = np.ones(3) if rigid else rng.uniform(0.9, 1.1, 3)
    affine = sitk.AffineTransform(3)
    fixed = template()
    affine.SetCenter(fixed.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in fixed.GetSize()]))
    affine.SetMatrix((np.array(rotation.GetMatrix()).reshape(3, 3) @ np.diag(scale)).ravel().tolist())
    affine.SetTranslation(rng.uniform(-20, 20, 3).tolist())
    return affine


def native_scan(truth: sitk.Transform, permute: bool = False, spacing=(1.5, 2.5, 2.0)) -> sitk.Image:
    """The template as a scan whose point truth(p) shows the template's point p, on a grid of its own
    (other spacing and origin; with ``permute`` the voxel axes stored in sagittal order, as IXI does)."""
    fixed = template()
    size = [int(np.ceil(n * 2.0 / s)) + 24 for n, s in zip(fixed.GetSize(), spacing)]
    reference = sitk.Image(size, sitk.sitkFloat32)
    reference.SetSpacing(spacing)
    direction = np.eye(3)
    if permute:
        direction = np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0]], float)  # array x runs along patient z
    reference.SetDirection(direction.ravel().tolist())
    centre = np.array(truth.TransformPoint(fixed.TransformContinuousIndexToPhysicalPoint(
        [(n - 1) / 2 for n in fixed.GetSize()])))
    reference.SetOrigin((centre - direction @ (np.array(spacing) * (np.array(size) - 1) / 2)).tolist())
    return sitk.Resample(fixed, reference, truth.GetInverse(), sitk.sitkLinear, 0.0)


def mean_error_mm(found: sitk.Transform, truth: sitk.Transform) -> float:
    return float(np.mean([np.linalg.norm(np.subtract(found.TransformPoint(p), truth.TransformPoint(p)))
                          for p in brain_points(template())]))


@pytest.mark.parametrize("seed, permute", [(0, False), (1, True)])
def test_a_warped_brain_is_brought_back_onto_the_template_within_2_mm(seed, permute):
    truth = known_affine(seed)
    registration = register(template(), native_scan(truth, permute))
    check_registration(registration, "warped")
    assert mean_error_mm(registration.transform, truth) <= 2.0
    assert registration.determinant == pytest.approx(np.linalg.det(np.array(truth.GetMatrix()).reshape(3, 3)), abs=0.03)


def test_a_mask_and_a_lesion_go_to_the_template_and_back_to_the_native_grid():
    truth = known_affine(2)
    scan = native_scan(truth)
    registration = register(template(), scan)
    native = sitk.GetArrayFromImage(scan)
    brain = sitk.GetImageFromArray((native > 0.05 * native.max()).astype(np.uint8))
    brain.CopyInformation(scan)
    lesion_array = np.zeros(native.shape, np.uint8)
    centre = np.array(native.shape) // 2
    lesion_array[tuple(slice(c - 6, c + 6) for c in centre)] = 1
    lesion = sitk.GetImageFromArray(lesion_array)
    lesion.CopyInformation(scan)
    on_template = resample_onto(lesion, template(), registration.transform, labels=True)
    mask_on_template = sitk.GetArrayFromImage(resample_onto(brain, template(), registration.transform, labels=True))
    expected_mask = sitk.GetArrayFromImage(template()) > 0.05 * sitk.GetArrayFromImage(template()).max()
    dice = 2 * np.sum(mask_on_template & expected_mask) / (mask_on_template.sum() + expected_mask.sum())
    assert dice >= 0.95
    # A "prediction" that is the label itself, carried back through the inverse transform.
    back = sitk.GetArrayFromImage(resample_onto(on_template, scan, registration.transform.GetInverse(), labels=True))
    assert 2 * np.sum((back > 0) & (lesion_array > 0)) / (back.sum() + lesion_array.sum()) >= 0.9


def test_a_second_channel_offset_by_a_rigid_motion_is_aligned_to_the_first_within_1_5_mm():
    first = native_scan(known_affine(3))
    motion = known_affine(4, rigid=True)
    rotation = sitk.Euler3DTransform()
    rotation.SetCenter(motion.GetCenter())
    rotation.SetRotation(*np.deg2rad([4.0, -3.0, 5.0]))
    rotation.SetTranslation((6.0, -4.0, 3.0))
    second = sitk.Resample(first, first, rotation.GetInverse(), sitk.sitkLinear, 0.0)
    registration = register(first, second, rigid_only=True)
    errors = [np.linalg.norm(np.subtract(registration.transform.TransformPoint(p), rotation.TransformPoint(p)))
              for p in brain_points(first)]
    assert np.mean(errors) <= 1.5


def test_a_volume_of_noise_is_refused_naming_the_scan():
    rng = np.random.default_rng(0)
    noise = sitk.GetImageFromArray(rng.random((60, 70, 60)).astype(np.float32))
    noise.SetSpacing((3.0, 3.0, 3.0))
    noise.SetOrigin(template().GetOrigin())
    with pytest.raises(UserError, match="noise_0000.nii.gz"):
        check_registration(register(template(), noise), "noise_0000.nii.gz")


def test_an_empty_volume_is_refused_naming_the_scan():
    empty = sitk.Image([40, 40, 40], sitk.sitkFloat32)
    empty.SetSpacing((4.0, 4.0, 4.0))
    with pytest.raises(UserError, match=r"registration to the template failed .*empty_0000.nii.gz"):
        register(template(), empty, scan="empty_0000.nii.gz")
