"""A skull-stripped two-channel scan onto the template and its maps back (issue 12 groundwork)."""
import numpy as np
import pytest
import SimpleITK as sitk

from disyre_v2.errors import UserError
from disyre_v2.preparation.prepare_case import prepare_scan, to_native
from disyre_v2.preparation.template import Template
from tests.test_registration import known_affine, native_scan, template


def small_template() -> Template:
    image = template()
    return Template("mni2mm", image, sitk.Cast(image > 0, sitk.sitkUInt8), whole_head=False)


def write(image: sitk.Image, path) -> str:
    sitk.WriteImage(image, str(path))
    return str(path)


def test_two_channels_a_mask_and_a_label_land_on_the_template_and_the_label_comes_back(tmp_path):
    first = native_scan(known_affine(5))
    moved = sitk.Euler3DTransform()
    moved.SetCenter(known_affine(5).GetCenter())
    moved.SetRotation(*np.deg2rad([3.0, -4.0, 2.0]))
    moved.SetTranslation((5.0, 3.0, -4.0))
    array = sitk.GetArrayFromImage(first)
    inverted = sitk.GetImageFromArray(np.where(array > 0, array.max() * 1.2 - array, 0).astype(np.float32))
    inverted.CopyInformation(first)  # a T2-like contrast of the same head
    second = sitk.Resample(inverted, first, moved.GetInverse(), sitk.sitkLinear, 0.0)
    label_array = np.zeros(array.shape, np.uint8)
    centre = np.array(array.shape) // 2
    label_array[tuple(slice(c - 5, c + 5) for c in centre)] = 1
    label = sitk.GetImageFromArray(label_array)
    label.CopyInformation(first)
    paths = [write(first, tmp_path / "a_0000.nii.gz"), write(second, tmp_path / "a_0001.nii.gz")]
    prepared = prepare_scan(paths, small_template(), label_path=write(label, tmp_path / "a_label.nii.gz"))
    reference = sitk.GetArrayFromImage(template())
    brain = reference > 0.05 * reference.max()
    on_template = [sitk.GetArrayFromImage(image) for image in prepared.images]
    assert all(image.GetSize() == template().GetSize() for image in prepared.images)
    # Channel 0 matches the template; channel 1 (inverted contrast) anti-correlates with it where both are brain.
    assert np.corrcoef(on_template[0][brain], reference[brain])[0, 1] > 0.95
    both = brain & (on_template[1] > 0)
    assert np.corrcoef(on_template[1][both], reference[both])[0, 1] < -0.9
    mask = sitk.GetArrayFromImage(prepared.brain) > 0
    assert 2 * np.sum(mask & brain) / (mask.sum() + brain.sum()) >= 0.95
    back = sitk.GetArrayFromImage(to_native(prepared.label, first, prepared.transform, labels=True)) > 0
    assert 2 * np.sum(back & (label_array > 0)) / (back.sum() + label_array.sum()) >= 0.9


def test_an_empty_mask_and_a_brain_of_the_wrong_size_are_named(tmp_path):
    scan = native_scan(known_affine(6))
    path = write(scan, tmp_path / "b_0000.nii.gz")
    empty = sitk.Image(scan.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(scan)
    with pytest.raises(UserError, match="brain mask from the mask file is empty.*b_mask.nii.gz"):
        prepare_scan([path], small_template(), mask_path=write(empty, tmp_path / "b_mask.nii.gz"))
    # A "mask" that is the whole field of view (a head mask, not a brain mask): registration is fine,
    # the brain is then far larger than the template's.
    box = sitk.Image(scan.GetSize(), sitk.sitkUInt8) + 1
    box.CopyInformation(scan)
    with pytest.raises(UserError, match=r"template's brain volume.*b_box_mask.nii.gz"):
        prepare_scan([path], small_template(), mask_path=write(box, tmp_path / "b_box_mask.nii.gz"))
