import numpy as np
import pytest
import SimpleITK as sitk

from disyre_v2.imageio import (
    Geometry,
    ImageFormatError,
    read_case,
    read_image,
    read_label,
    read_mask,
    write_float_map,
    write_mask,
)
from tests.nifti_factory import OBLIQUE_DIRECTION, brain_volume, write_nifti

SPACING = (1.2, 0.9, 2.5)
ORIGIN = (-10.0, 20.5, 3.25)


def test_read_returns_zyx_float32_and_geometry(tmp_path):
    volume = brain_volume((6, 7, 8)).astype(np.int16)
    path = write_nifti(tmp_path / "a.nii.gz", volume, SPACING, ORIGIN, OBLIQUE_DIRECTION)
    array, geometry = read_image(path)
    assert array.dtype == np.float32 and array.shape == (6, 7, 8)
    np.testing.assert_array_equal(array, volume)
    assert geometry.size == (8, 7, 6) and geometry.shape_zyx == (6, 7, 8)
    np.testing.assert_allclose(geometry.spacing, SPACING, rtol=1e-6)
    np.testing.assert_allclose(geometry.origin, ORIGIN, atol=1e-5)
    np.testing.assert_allclose(geometry.direction, OBLIQUE_DIRECTION, atol=1e-6)


def test_write_round_trip_keeps_geometry(tmp_path):
    volume = brain_volume((6, 7, 8))
    _, geometry = read_image(write_nifti(tmp_path / "in.nii.gz", volume, SPACING, ORIGIN, OBLIQUE_DIRECTION))
    out = write_float_map(volume * 0.5, geometry, tmp_path / "out" / "map.nii.gz")
    array, back = read_image(out)
    np.testing.assert_array_equal(array, volume * 0.5)
    assert back == Geometry.from_dict(geometry.to_dict())
    assert sitk.ReadImage(str(out)).GetPixelID() == sitk.sitkFloat32
    mask_path = write_mask(volume > 0, geometry, tmp_path / "mask.nii")
    assert sitk.ReadImage(str(mask_path)).GetPixelID() == sitk.sitkUInt8
    np.testing.assert_array_equal(read_mask(mask_path, geometry), volume > 0)
    assert [p.name for p in tmp_path.rglob(".*")] == []  # no temporary left


def test_write_refuses_wrong_shape_and_leaves_nothing(tmp_path):
    _, geometry = read_image(write_nifti(tmp_path / "in.nii.gz", brain_volume((6, 7, 8))))
    with pytest.raises(ValueError, match="does not fit the grid"):
        write_float_map(np.zeros((8, 7, 6)), geometry, tmp_path / "bad.nii.gz")
    assert not (tmp_path / "bad.nii.gz").exists()


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    _, geometry = read_image(write_nifti(tmp_path / "in.nii.gz", brain_volume((6, 7, 8))))
    target = tmp_path / "map.nii.gz"
    target.write_bytes(b"previous content")

    def crash(image, path, **kwargs):
        open(path, "wb").write(b"half")  # a partial write, then the failure
        raise RuntimeError("disk full")

    monkeypatch.setattr(sitk, "WriteImage", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        write_float_map(np.zeros((6, 7, 8)), geometry, target)
    assert target.read_bytes() == b"previous content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.nii.gz", "map.nii.gz"]


def test_unreadable_file_is_named(tmp_path):
    path = tmp_path / "broken.nii.gz"
    path.write_bytes(b"not an image at all")
    with pytest.raises(ImageFormatError, match=r"broken\.nii\.gz is not a readable image"):
        read_image(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ImageFormatError, match=r"nothere\.nii\.gz does not exist"):
        read_image(tmp_path / "nothere.nii.gz")


def test_4d_with_one_volume_is_squeezed(tmp_path):
    volume = brain_volume((5, 6, 7))
    image = sitk.JoinSeries(sitk.GetImageFromArray(volume))
    assert image.GetDimension() == 4
    sitk.WriteImage(image, str(tmp_path / "one.nii.gz"))
    array, geometry = read_image(tmp_path / "one.nii.gz")
    np.testing.assert_array_equal(array, volume)
    assert geometry.size == (7, 6, 5)


def test_4d_series_and_2d_images_are_refused(tmp_path):
    volume = sitk.GetImageFromArray(brain_volume((5, 6, 7)))
    sitk.WriteImage(sitk.JoinSeries([volume, volume]), str(tmp_path / "series.nii.gz"))
    with pytest.raises(ImageFormatError, match=r"series\.nii\.gz is 4D.*expected a 3D volume"):
        read_image(tmp_path / "series.nii.gz")
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((5, 6), np.float32)), str(tmp_path / "flat.nii.gz"))
    with pytest.raises(ImageFormatError, match=r"flat\.nii\.gz is 2D"):
        read_image(tmp_path / "flat.nii.gz")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_values_are_refused(tmp_path, bad):
    volume = brain_volume((5, 6, 7))
    volume[2, 3, 3] = bad
    path = write_nifti(tmp_path / "nan.nii.gz", volume)
    with pytest.raises(ImageFormatError, match=r"nan\.nii\.gz contains 1 NaN or infinite voxel") as error:
        read_image(path)
    # Any input image (raw scan, mask, map): the fix does not assume a stage such as conversion.
    assert "conversion" not in str(error.value) and "Replace them in the file" in str(error.value)


def test_read_case_stacks_channels(tmp_path):
    a, b = brain_volume((5, 6, 7), 0), brain_volume((5, 6, 7), 1)
    paths = [write_nifti(tmp_path / "c_0000.nii.gz", a), write_nifti(tmp_path / "c_0001.nii.gz", b)]
    array, _ = read_case(paths)
    assert array.shape == (2, 5, 6, 7)
    np.testing.assert_array_equal(array[1], b)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"spacing": (1.0, 1.0, 1.5)}, r"spacing \(1, 1, 1\) vs \(1, 1, 1\.5\)"),
        ({"origin": (0.0, 0.0, 4.0)}, r"origin \(0, 0, 0\) vs \(0, 0, 4\)"),
        ({"direction": OBLIQUE_DIRECTION}, r"direction"),
    ],
)
def test_channels_on_other_grid_are_refused_with_values(tmp_path, kwargs, message):
    volume = brain_volume((5, 6, 7))
    first = write_nifti(tmp_path / "c_0000.nii.gz", volume)
    second = write_nifti(tmp_path / "c_0001.nii.gz", volume, **kwargs)
    with pytest.raises(ImageFormatError, match=r"c_0001\.nii\.gz is not on the grid of .*c_0000\.nii\.gz: " + message):
        read_case([first, second])


def test_shape_mismatch_and_tiny_rounding_tolerated(tmp_path):
    first = write_nifti(tmp_path / "a.nii.gz", brain_volume((5, 6, 7)))
    other = write_nifti(tmp_path / "b.nii.gz", brain_volume((5, 6, 8)))
    with pytest.raises(ImageFormatError, match=r"size \(7, 6, 5\) vs \(8, 6, 5\)"):
        read_case([first, other])
    rounded = write_nifti(tmp_path / "c.nii.gz", brain_volume((5, 6, 7)), spacing=(1.0000001, 1, 1), origin=(1e-6, 0, 0))
    assert read_case([first, rounded])[0].shape == (2, 5, 6, 7)


def test_mask_and_label_grid_checked(tmp_path):
    _, geometry = read_image(write_nifti(tmp_path / "img.nii.gz", brain_volume((5, 6, 7))))
    label = write_nifti(tmp_path / "lab.nii.gz", np.zeros((5, 6, 7)), spacing=(2, 2, 2))
    with pytest.raises(ImageFormatError, match=r"lab\.nii\.gz is not on the grid of img\.nii\.gz: spacing"):
        read_label(label, geometry, "img.nii.gz")
    mask = write_nifti(tmp_path / "mask.nii.gz", np.ones((5, 6, 8)))
    with pytest.raises(ImageFormatError, match=r"mask\.nii\.gz is not on the grid"):
        read_mask(mask, geometry, "img.nii.gz")


def test_label_must_be_integer(tmp_path):
    values = np.zeros((5, 6, 7), np.float32)
    values[2, 2, 2] = 0.5
    path = write_nifti(tmp_path / "soft.nii.gz", values)
    with pytest.raises(ImageFormatError, match=r"soft\.nii\.gz has non-integer values \(e\.g\. 0\.5\)"):
        read_label(path)
    values[2, 2, 2] = 4
    assert read_label(write_nifti(tmp_path / "ok.nii.gz", values)).dtype == np.int16


@pytest.mark.parametrize("name, dtype", [("cut.nii.gz", np.int16), ("cut.nii", np.int16), ("cut.nii.gz", np.float32)])
def test_truncated_file_is_refused(tmp_path, name, dtype):
    path = write_nifti(tmp_path / name, brain_volume((20, 22, 24)).astype(dtype))
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 3])
    with pytest.raises(ImageFormatError, match=r"cut\.nii(\.gz)? is (truncated or damaged|not a readable image)"):
        read_image(path)
