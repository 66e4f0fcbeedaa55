"""preprocess_case on files, the preprocessed store and the dataset preprocessor (reuse, atomicity)."""
import json

import numpy as np
import pytest

import disyre_v2.preprocessing.store as store
from disyre_v2.imageio.errors import ImageFormatError
from disyre_v2.imageio.reader import read_case, read_mask
from disyre_v2.imageio.writer import write_image, write_mask
from disyre_v2.planning.fingerprint import extract_fingerprint
from disyre_v2.planning.planner import plan
from disyre_v2.preprocessing.dataset_preprocessor import preprocess
from disyre_v2.preprocessing.inverse import restore_to_raw
from disyre_v2.preprocessing.preprocessor import preprocess_case
from disyre_v2.preprocessing.store import list_preprocessed_cases, load_preprocessed_case
from tests.planning_test_data import SHAPE, geometry_for, write_raw_dataset


@pytest.fixture
def planned(tmp_path):
    """A raw dataset of 3 two-channel cases at 1 mm and its plans."""
    folder = write_raw_dataset(tmp_path / "raw", n_train=3, channels=("T1", "T2"))
    return folder, plan(extract_fingerprint(folder, progress=False))


def case_files(folder, case_id, n_channels=2):
    return [folder / "imagesTr" / f"{case_id}_{c:04d}.nii.gz" for c in range(n_channels)]


def test_preprocess_case_crops_normalises_and_resamples(planned):
    folder, plans = planned
    images, mask_file = case_files(folder, "case01"), folder / "masksTr" / "case01.nii.gz"
    raw, _ = read_case(images)
    raw_mask = read_mask(mask_file)

    data, mask, props = preprocess_case(images, mask_file, plans, "2d")
    assert props["resampled"] is False and props["configuration"] == "2d"
    assert data.dtype == np.float32 and mask.dtype == bool
    assert data.shape == (2,) + tuple(props["shape_cropped"]) and mask.shape == data.shape[1:]
    assert mask.sum() == raw_mask.sum()  # the crop keeps the whole brain
    assert data.min() == 0.0 and data.max() == 1.0 and (data[:, ~mask] == 0).all()
    for c in range(2):
        assert props["normalization"]["scales"][c] == pytest.approx(np.percentile(raw[c][raw_mask], 98))

    small, small_mask, small_props = preprocess_case(images, mask_file, plans, "2d_small")
    assert small_props["resampled"] is True
    assert small_props["preprocessed_geometry"]["spacing"] == [2.0, 2.0, 2.0]
    assert small.shape[1:] == tuple(small_props["shape_preprocessed"]) == small_mask.shape
    assert small.shape[1:] == tuple(np.floor(np.asarray(props["shape_cropped"]) / 2 + 0.5).astype(int))
    assert small.min() >= 0.0 and small.max() <= 1.0 and (small[:, ~small_mask] == 0).all()
    assert restore_to_raw(small, small_props).shape == (2,) + SHAPE


def test_without_a_mask_file_the_mask_is_any_channel_above_zero(planned):
    folder, plans = planned
    images = case_files(folder, "case00")
    raw, _ = read_case(images)
    _, mask, props = preprocess_case(images, None, plans, "2d")
    assert props["mask_path"] is None
    assert np.array_equal(restore_to_raw(mask, props, "nearest"), (raw > 0).any(0))


# --- bad input: each error names the file -----------------------------------------------------

def test_bad_cases_get_errors_naming_the_file(planned, tmp_path):
    folder, plans = planned
    images = case_files(folder, "case02")
    data, geometry = read_case(images)

    empty = tmp_path / "empty_mask.nii.gz"
    write_mask(np.zeros(SHAPE, np.uint8), geometry, empty)
    with pytest.raises(ImageFormatError, match=f"{empty} is an empty brain mask"):
        preprocess_case(images, empty, plans, "2d")

    shifted = tmp_path / "shifted_mask.nii.gz"
    write_mask(np.ones(SHAPE, np.uint8), geometry_for(origin=(0.0, 0.0, 0.0)), shifted)
    with pytest.raises(ImageFormatError, match=f"{shifted} is not on the grid of {images[0]}"):
        preprocess_case(images, shifted, plans, "2d")

    coarse = tmp_path / "coarse_0001.nii.gz"
    write_image(data[1], geometry_for(spacing=(2.0, 2.0, 2.0)), coarse)
    with pytest.raises(ImageFormatError, match=f"{coarse} is not on the grid of {images[0]}"):
        preprocess_case([images[0], coarse], None, plans, "2d")

    nan = tmp_path / "nan_0000.nii.gz"
    data[0, 10, 10, 10] = np.nan
    write_image(data[0], geometry, nan)
    with pytest.raises(ImageFormatError, match=f"{nan} contains 1 NaN"):
        preprocess_case([nan, images[1]], None, plans, "2d")

    with pytest.raises(ImageFormatError, match="1 channel file\\(s\\) given, but the plans of Dataset001_Tiny expect 2"):
        preprocess_case(images[:1], None, plans, "2d")


# --- the store ------------------------------------------------------------------------------

def test_preprocess_writes_the_store_and_reuses_finished_cases(planned, tmp_path):
    folder, plans = planned
    out = tmp_path / "preprocessed"
    assert preprocess(folder, out, plans, ["2d"], progress=False) == {"2d": {"written": 3, "reused": 0}}
    assert list_preprocessed_cases(out / "2d") == ["case00", "case01", "case02"]
    data, mask, props = load_preprocessed_case(out / "2d", "case01")
    expected, expected_mask, _ = preprocess_case(case_files(folder, "case01"), folder / "masksTr" / "case01.nii.gz",
                                                 plans, "2d")
    assert np.array_equal(data, expected) and np.array_equal(mask, expected_mask)
    assert props["case_id"] == "case01" and props["crop_box"] == json.loads(json.dumps(props["crop_box"]))
    stamp = (out / "2d" / "case01.npy").stat().st_mtime_ns

    assert preprocess(folder, out, plans, ["2d"], progress=False) == {"2d": {"written": 0, "reused": 3}}
    assert (out / "2d" / "case01.npy").stat().st_mtime_ns == stamp
    # A change of the plans that alters the arrays invalidates the finished cases.
    plans["configurations"]["2d"]["normalization"]["percentile"] = 99.0
    assert preprocess(folder, out, plans, ["2d"], progress=False) == {"2d": {"written": 3, "reused": 0}}
    assert preprocess(folder, out, plans, ["2d"], clean=True, progress=False)["2d"]["written"] == 3


def test_a_crash_mid_way_leaves_no_truncated_array(planned, tmp_path, monkeypatch):
    folder, plans = planned
    out = tmp_path / "preprocessed"
    real_save, calls = np.save, []

    def save_then_crash(handle, array, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # the data array of the second case: half written, then the crash
            handle.write(b"\x93NUMPY partial")
            raise OSError("disk full")
        real_save(handle, array, **kwargs)

    monkeypatch.setattr(store.np, "save", save_then_crash)
    with pytest.raises(OSError, match="disk full"):
        preprocess(folder, out, plans, ["2d"], progress=False)
    names = sorted(p.name for p in (out / "2d").iterdir())
    assert names == ["case00.json", "case00.npy", "case00_mask.npy"]  # no case01.npy, no temporary

    monkeypatch.setattr(store.np, "save", real_save)
    assert preprocess(folder, out, plans, ["2d"], progress=False) == {"2d": {"written": 2, "reused": 1}}
    assert np.load(out / "2d" / "case01.npy").dtype == np.float32


def test_leftover_temporaries_are_removed_and_missing_cases_reported(planned, tmp_path):
    folder, plans = planned
    out = tmp_path / "preprocessed" / "2d"
    out.mkdir(parents=True)
    (out / ".case00.npy.1a2b3c4d.tmp.npy").write_bytes(b"junk")
    preprocess(folder, out.parent, plans, ["2d"], progress=False)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    with pytest.raises(FileNotFoundError, match="case09.npy does not exist: case case09 has not been preprocessed"):
        load_preprocessed_case(out, "case09")


def test_worker_processes_give_the_same_store(planned, tmp_path):
    folder, plans = planned
    preprocess(folder, tmp_path / "one", plans, ["2d_small"], num_workers=1, progress=False)
    preprocess(folder, tmp_path / "two", plans, ["2d_small"], num_workers=2, progress=False)
    for case_id in ("case00", "case01", "case02"):
        one = load_preprocessed_case(tmp_path / "one" / "2d_small", case_id)
        two = load_preprocessed_case(tmp_path / "two" / "2d_small", case_id)
        assert np.array_equal(one[0], two[0]) and np.array_equal(one[1], two[1])
        assert one[2]["preprocessed_geometry"] == two[2]["preprocessed_geometry"]
