import json

import numpy as np
import pytest

from disyre_v2.dataset import (
    DatasetIntegrityError,
    list_raw_cases,
    load_dataset_json,
    verify_dataset_integrity,
    write_dataset_json,
)
from tests.nifti_factory import brain_volume, write_nifti

SHAPE = (6, 8, 7)


def make_dataset(root, n_train=2, n_test=2, channels=("T1", "T2"), masks=True, labels=True):
    """A valid tiny raw dataset written file by file."""
    folder = root / "Dataset009_Tiny"
    for split, n in (("Tr", n_train), ("Ts", n_test)):
        for i in range(n):
            case = f"{split.lower()}{i:02d}"
            for c in range(len(channels)):
                write_nifti(folder / f"images{split}" / f"{case}_{c:04d}.nii.gz", brain_volume(SHAPE, i + c))
            if masks:
                write_nifti(folder / f"masks{split}" / f"{case}.nii.gz", (brain_volume(SHAPE) > 0).astype(np.uint8))
            if labels and split == "Ts":
                label = np.zeros(SHAPE, np.uint8)
                label[2:4, 3:5, 3:5] = 1
                write_nifti(folder / "labelsTs" / f"{case}.nii.gz", label)
    write_dataset_json(folder, "Tiny", list(channels), n_train, n_test, masks_tr=masks, masks_ts=masks, labels_ts=labels)
    return folder


def problems_of(folder, **kwargs):
    with pytest.raises(DatasetIntegrityError) as info:
        verify_dataset_integrity(folder, progress=False, **kwargs)
    return "\n".join(info.value.problems)


def test_valid_dataset_passes_and_lists_cases(tmp_path):
    folder = make_dataset(tmp_path)
    data = verify_dataset_integrity(folder, progress=False)
    assert data["numTraining"] == 2 and data["labelsTs"] is True
    cases = list_raw_cases(folder, "Ts", data)
    assert [c.case_id for c in cases] == ["ts00", "ts01"]
    assert cases[0].image_paths[1].name == "ts00_0001.nii.gz"
    assert cases[0].label_path.name == "ts00.nii.gz" and cases[0].mask_path is not None


def test_missing_dataset_json(tmp_path):
    folder = make_dataset(tmp_path)
    (folder / "dataset.json").unlink()
    assert "dataset.json does not exist" in problems_of(folder)


def test_malformed_dataset_json(tmp_path):
    folder = make_dataset(tmp_path)
    data = json.loads((folder / "dataset.json").read_text())
    del data["file_ending"]
    (folder / "dataset.json").write_text(json.dumps(data))
    assert "lacks the key(s) file_ending" in problems_of(folder)
    (folder / "dataset.json").write_text("{not json")
    assert "is not valid JSON" in problems_of(folder)


def test_missing_channel_is_named(tmp_path):
    folder = make_dataset(tmp_path)
    (folder / "imagesTr" / "tr01_0001.nii.gz").unlink()
    assert "case tr01: channel file(s) missing: " in problems_of(folder)
    assert "tr01_0001.nii.gz" in problems_of(folder)


def test_extra_channel_and_badly_named_file(tmp_path):
    folder = make_dataset(tmp_path)
    write_nifti(folder / "imagesTr" / "tr00_0002.nii.gz", brain_volume(SHAPE))
    write_nifti(folder / "imagesTr" / "scan.nii.gz", brain_volume(SHAPE))
    found = problems_of(folder)
    assert "tr00_0002.nii.gz is channel 2 but dataset.json declares 2 channel(s)" in found
    assert "scan.nii.gz does not follow the pattern CASE_0000.nii.gz" in found


def test_counts_must_match(tmp_path):
    folder = make_dataset(tmp_path)
    data = load_dataset_json(folder)
    write_dataset_json(folder, "Tiny", ["T1", "T2"], 3, 2, masks_tr=True, masks_ts=True, labels_ts=True)
    assert "numTraining is 3 but" in problems_of(folder)
    assert data["numTraining"] == 2


def test_declared_mask_and_label_missing(tmp_path):
    folder = make_dataset(tmp_path)
    (folder / "masksTr" / "tr00.nii.gz").unlink()
    (folder / "labelsTs" / "ts01.nii.gz").unlink()
    found = problems_of(folder)
    assert "masksTr/tr00.nii.gz is missing but dataset.json declares masksTr" in found
    assert "labelsTs/ts01.nii.gz is missing but dataset.json declares labelsTs" in found


def test_orphan_label_is_named(tmp_path):
    folder = make_dataset(tmp_path)
    write_nifti(folder / "labelsTs" / "ts99.nii.gz", np.zeros(SHAPE, np.uint8))
    assert "ts99.nii.gz belongs to no case in imagesTs" in problems_of(folder)


def test_unsafe_and_duplicated_case_names(tmp_path):
    folder = make_dataset(tmp_path, masks=False, labels=False)
    for c in range(2):
        (folder / "imagesTs" / f"ts00_{c:04d}.nii.gz").rename(folder / "imagesTs" / f"tr00_{c:04d}.nii.gz")
        write_nifti(folder / "imagesTs" / f"bad name_{c:04d}.nii.gz", brain_volume(SHAPE))
    write_dataset_json(folder, "Tiny", ["T1", "T2"], 2, 3)
    found = problems_of(folder)
    assert "case name 'bad name' is not safe as a file name" in found
    assert "used in both imagesTr and imagesTs: tr00" in found


def test_label_on_other_grid(tmp_path):
    folder = make_dataset(tmp_path)
    write_nifti(folder / "labelsTs" / "ts00.nii.gz", np.zeros(SHAPE, np.uint8), spacing=(1, 1, 3))
    assert "labelsTs/ts00.nii.gz is not on the grid of" in problems_of(folder)


def test_channels_on_other_grids(tmp_path):
    folder = make_dataset(tmp_path)
    write_nifti(folder / "imagesTr" / "tr00_0001.nii.gz", brain_volume(SHAPE), origin=(5, 0, 0))
    assert "tr00_0001.nii.gz is not on the grid of" in problems_of(folder)


def test_non_integer_label(tmp_path):
    folder = make_dataset(tmp_path)
    write_nifti(folder / "labelsTs" / "ts00.nii.gz", np.full(SHAPE, 0.25, np.float32))
    assert "ts00.nii.gz has non-integer values" in problems_of(folder)


def test_empty_mask(tmp_path):
    folder = make_dataset(tmp_path)
    write_nifti(folder / "masksTr" / "tr01.nii.gz", np.zeros(SHAPE, np.uint8))
    assert "masksTr/tr01.nii.gz is empty" in problems_of(folder)


def test_blank_image_without_mask(tmp_path):
    folder = make_dataset(tmp_path, masks=False, labels=False)
    for c in range(2):
        write_nifti(folder / "imagesTr" / f"tr00_{c:04d}.nii.gz", np.zeros(SHAPE, np.float32))
    assert "no voxel > 0 in any channel" in problems_of(folder)


def test_nan_and_corrupt_images(tmp_path):
    folder = make_dataset(tmp_path)
    volume = brain_volume(SHAPE)
    volume[1, 1, 1] = np.nan
    write_nifti(folder / "imagesTs" / "ts00_0000.nii.gz", volume)
    (folder / "imagesTr" / "tr00_0000.nii.gz").write_bytes(b"\x1f\x8b garbage")
    found = problems_of(folder)
    assert "ts00_0000.nii.gz contains 1 NaN or infinite voxel" in found
    assert "tr00_0000.nii.gz is not a readable image" in found


def test_not_3d(tmp_path):
    folder = make_dataset(tmp_path)
    write_nifti(folder / "imagesTr" / "tr00_0000.nii.gz", np.ones((8, 7), np.float32))
    assert "tr00_0000.nii.gz is 2D" in problems_of(folder)


def test_fast_mode_skips_reading(tmp_path):
    folder = make_dataset(tmp_path)
    (folder / "imagesTr" / "tr00_0000.nii.gz").write_bytes(b"garbage")
    verify_dataset_integrity(folder, read_images=False, progress=False)
