"""Normalisation (method_numbers.md ("Intensities")) and cropping to the brain, on tiny arrays with exact values."""
import numpy as np
import pytest
import SimpleITK as sitk

from disyre_v2.preprocessing.cropping import brain_bounding_box, crop_to_box, cropped_geometry
from disyre_v2.preprocessing.normalization import NormalizationError, apply_normalization, normalization_scales
from tests.nifti_factory import OBLIQUE_DIRECTION
from tests.planning_test_data import geometry_for

BRAIN = {"percentile": 98.0, "domain": "brain", "clip": [0.0, 1.0]}


def tiny_case():
    """One channel, a 4x5x5 brain holding 1..100, a bright background of 500 outside it."""
    data = np.full((1, 6, 7, 7), 500.0, dtype=np.float32)
    mask = np.zeros((6, 7, 7), bool)
    mask[1:5, 1:6, 1:6] = True
    data[0][mask] = np.arange(1, 101, dtype=np.float32)
    return data, mask


def test_divide_by_the_98th_percentile_of_brain_voxels_clip_and_zero_background():
    data, mask = tiny_case()
    data[0, 1, 1, 1] = -5.0  # a negative brain voxel (was 1): clipped to 0 before anything else
    scales = normalization_scales(data, mask, BRAIN)
    # Percentile of max(x, 0) over the brain: values {0, 2, ..., 100}; numpy's linear rule.
    expected_p = np.percentile(np.concatenate([[0.0], np.arange(2, 101)]), 98)
    assert scales == [pytest.approx(expected_p)]
    assert expected_p == pytest.approx(98.02)
    out = apply_normalization(data, mask, scales, BRAIN["clip"])
    assert out.dtype == np.float32
    brain = out[0][mask]
    assert brain[0] == 0.0  # the negative voxel
    assert brain[48] == pytest.approx(49 / 98.02, rel=1e-6)
    assert brain[98] == 1.0 and brain[99] == 1.0  # 99 and 100 exceed p98: clipped to 1
    assert (out[0][~mask] == 0.0).all()  # background exactly 0, although it was 500


def test_domain_all_takes_the_percentile_over_every_voxel():
    data, mask = tiny_case()
    scales = normalization_scales(data, mask, {**BRAIN, "domain": "all"})
    assert scales == [pytest.approx(500.0)]  # most voxels are the 500 background
    out = apply_normalization(data, mask, scales, BRAIN["clip"])
    assert out[0][mask].max() == pytest.approx(100 / 500)
    assert (out[0][~mask] == 0.0).all()


def test_blank_channel_inside_the_brain_is_refused_naming_the_file():
    data, mask = tiny_case()
    data[0][mask] = 0.0
    with pytest.raises(NormalizationError, match="case_0000.nii.gz: the 98.0th percentile of the brain voxels is 0"):
        normalization_scales(data, mask, BRAIN, ["/data/case_0000.nii.gz"])


@pytest.mark.parametrize("bad, message", [
    ({"percentile": 98.0, "domain": "skull", "clip": [0, 1]}, "domain must be one of"),
    ({"percentile": 0.0, "domain": "brain", "clip": [0, 1]}, "percentile must lie in"),
    ({"percentile": 98.0, "domain": "brain", "clip": [1, 0]}, "low < high"),
    ({"domain": "brain", "clip": [0, 1]}, "lack 'percentile'"),
])
def test_malformed_normalisation_settings_are_refused(bad, message):
    data, mask = tiny_case()
    with pytest.raises(NormalizationError, match=message):
        normalization_scales(data, mask, bad)


def test_bounding_box_and_crop():
    mask = np.zeros((6, 7, 8), bool)
    mask[2, 3, 4] = mask[4, 1, 6] = True
    box = brain_bounding_box(mask)
    assert box == [[2, 5], [1, 4], [4, 7]]
    array = np.arange(2 * 6 * 7 * 8).reshape(2, 6, 7, 8)
    assert np.array_equal(crop_to_box(array, box), array[:, 2:5, 1:4, 4:7])
    with pytest.raises(ValueError, match="empty"):
        brain_bounding_box(np.zeros((3, 3, 3), bool))


def test_cropped_geometry_origin_is_the_physical_point_of_the_box_start():
    geometry = geometry_for(shape=(10, 12, 14), spacing=(0.9, 1.1, 2.0), direction=OBLIQUE_DIRECTION)
    box = [[2, 9], [3, 11], [1, 13]]
    cropped = cropped_geometry(geometry, box)
    image = geometry.apply_to(sitk.Image(list(geometry.size), sitk.sitkUInt8))
    assert cropped.origin == pytest.approx(image.TransformIndexToPhysicalPoint((1, 3, 2)), abs=1e-9)
    assert cropped.size == (12, 8, 7) and cropped.shape_zyx == (7, 8, 12)
    assert cropped.spacing == geometry.spacing and cropped.direction == geometry.direction
