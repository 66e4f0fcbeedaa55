import numpy as np
import pytest
import SimpleITK as sitk

from disyre_v2.errors import UserError
from disyre_v2.preparation.template import load_template


def test_the_default_is_nilearns_skull_stripped_mni152_with_its_brain_as_mask():
    template = load_template()
    assert template.image.GetSize() == (197, 233, 189) and template.image.GetSpacing() == (1.0, 1.0, 1.0)
    assert not template.whole_head
    # An adult brain: about 1.4-1.9 litres.
    assert 1300 < template.brain_volume_ml < 1900


def test_a_template_file_with_its_mask(tmp_path):
    image = sitk.GetImageFromArray(np.random.default_rng(0).random((20, 22, 24)).astype(np.float32) + 1)
    block = np.zeros((20, 22, 24), np.uint8)
    block[5:15, 6:16, 7:17] = 1  # 1,000 voxels of 1 mm³
    mask = sitk.GetImageFromArray(block)
    sitk.WriteImage(image, str(tmp_path / "head.nii.gz"))
    sitk.WriteImage(mask, str(tmp_path / "head_mask.nii.gz"))
    template = load_template(tmp_path / "head.nii.gz", tmp_path / "head_mask.nii.gz")
    assert template.whole_head and template.brain_volume_ml == pytest.approx(1.0)


@pytest.mark.parametrize("what", ["missing", "not_an_image", "missing_mask", "mask_on_other_grid"])
def test_bad_templates_are_named(tmp_path, what):
    good = tmp_path / "t.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((8, 8, 8), np.float32)), str(good))
    other = tmp_path / "other_mask.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((4, 8, 8), np.uint8)), str(other))
    (tmp_path / "junk.nii.gz").write_bytes(b"not a nifti")
    arguments = {"missing": (tmp_path / "nope.nii.gz", None), "not_an_image": (tmp_path / "junk.nii.gz", None),
                 "missing_mask": (good, tmp_path / "nope_mask.nii.gz"), "mask_on_other_grid": (good, other)}[what]
    with pytest.raises(UserError) as error:
        load_template(*arguments)
    named = arguments[1] if what in ("missing_mask", "mask_on_other_grid") else arguments[0]
    assert str(named) in str(error.value)
