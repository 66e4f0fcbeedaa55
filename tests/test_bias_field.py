import numpy as np
import pytest
import SimpleITK as sitk

from disyre_v2.errors import UserError
from disyre_v2.preparation.bias_field import correct_bias_field, default_mask


def biased_phantom():
    z, y, x = np.mgrid[0:60, 0:70, 0:60].astype(float)
    inside = ((z - 30) / 25) ** 2 + ((y - 35) / 30) ** 2 + ((x - 30) / 25) ** 2 < 1
    tissue = np.where(inside, 100 + 5 * np.random.default_rng(0).standard_normal(inside.shape), 0)
    bias = np.exp(0.3 * (x - 30) / 30 + 0.2 * (z - 30) / 30)  # a smooth field of +-35 %
    image = sitk.GetImageFromArray((tissue * bias).astype(np.float32))
    image.SetSpacing((2.0, 1.5, 2.5))
    image.SetOrigin((-10.0, 4.0, 7.0))
    return image, inside


def test_a_smooth_multiplicative_field_is_removed_at_full_resolution():
    image, inside = biased_phantom()
    corrected = correct_bias_field(image)
    before, after = sitk.GetArrayFromImage(image)[inside], sitk.GetArrayFromImage(corrected)[inside]
    # The tissue's own noise is 5 %: the field's 14 % spread is gone.
    assert np.std(before) / np.mean(before) > 0.13
    assert np.std(after) / np.mean(after) < 0.06
    assert corrected.GetSize() == image.GetSize() and corrected.GetSpacing() == image.GetSpacing()
    assert corrected.GetOrigin() == image.GetOrigin()
    assert np.all(sitk.GetArrayFromImage(corrected)[~inside] == 0)


def test_an_empty_scan_is_refused_naming_it():
    empty = sitk.Image([32, 32, 32], sitk.sitkFloat32)
    with pytest.raises(UserError, match="no foreground voxel.*empty_0000.nii.gz"):
        correct_bias_field(empty, scan="empty_0000.nii.gz")


def test_the_default_mask_is_the_head_without_the_noisy_air_and_the_field_is_removed_inside_it():
    """A scan whose air is not 0 but Rayleigh-like noise (magnitude images): ``image > 0`` would be
    every voxel; the default mask must be the head alone, and N4 fitted inside it removes the field."""
    z, y, x = np.mgrid[0:60, 0:70, 0:60].astype(float)
    inside = ((z - 30) / 25) ** 2 + ((y - 35) / 30) ** 2 + ((x - 30) / 25) ** 2 < 1
    rng = np.random.default_rng(1)
    tissue = 100 + 5 * rng.standard_normal(inside.shape)
    bias = np.exp(0.3 * (x - 30) / 30 + 0.2 * (z - 30) / 30)
    air = np.abs(rng.normal(0.0, 8.0, inside.shape))  # mean ~6, up to ~35: far from 0
    array = np.where(inside, tissue * bias, air).astype(np.float32)
    assert (array[~inside] > 0).mean() > 0.99
    image = sitk.GetImageFromArray(array)

    mask = sitk.GetArrayFromImage(default_mask(image)).astype(bool)
    assert not (mask & ~inside).any()  # no air voxel
    assert mask[inside].mean() > 0.999  # the whole head

    corrected = sitk.GetArrayFromImage(correct_bias_field(image))
    # The known field is gone up to a global factor: what is left of it inside the head is < 2 %
    # (it spanned +-35 %, a spread of 13 % in log).
    residual = np.log(corrected[inside]) - np.log(tissue[inside])
    assert np.std(np.log(bias[inside])) > 0.12
    assert np.std(residual) < 0.02
