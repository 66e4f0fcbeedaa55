"""disyre_v2_convert_brats2020 on miniature replicas of the BraTS 2020 tree."""
import logging

import numpy as np
import pytest

from disyre_v2.dataset import verify_dataset_integrity
from disyre_v2.dataset_conversion.brats2020 import convert_brats2020
from disyre_v2.dataset_conversion.conversion_plan import MissingFilesError
from disyre_v2.dataset_conversion.file_search import DuplicateFilesError
from disyre_v2.dataset_conversion.raw_dataset_writer import DatasetExistsError
from disyre_v2.imageio import ImageFormatError
from disyre_v2.run.convert_brats2020 import build_parser, main
from tests.conversion_checks import (
    assert_every_flag_documented, assert_nothing_written, corrupt, direction, help_text, names, voxels,
)
from tests.replicas import BRATS_CASES, SRI24, write_brats2020


def test_official_layout_two_channels_api(tmp_path, disyre_env):
    replica = write_brats2020(tmp_path, layout="official")
    target = convert_brats2020(replica.root, 2, modalities=["T1", "t2"])

    assert target == disyre_env["raw"] / "Dataset002_BraTS2020_T1_T2"
    dataset_json = verify_dataset_integrity(target, progress=False)
    assert dataset_json["channel_names"] == {"0": "T1", "1": "T2"}
    assert dataset_json["labels"] == {"background": 0, "necrosis": 1, "edema": 2, "enhancing": 4}
    assert names(target / "imagesTs") == [f"{c}_{k:04d}.nii.gz" for c in BRATS_CASES for k in (0, 1)]
    for case in BRATS_CASES:
        files = replica.files[case]
        t1, t2 = voxels(files["t1"]), voxels(files["t2"])
        np.testing.assert_array_equal(voxels(target / "imagesTs" / f"{case}_0000.nii.gz"), t1)
        np.testing.assert_array_equal(voxels(target / "imagesTs" / f"{case}_0001.nii.gz"), t2)
        label = voxels(target / "labelsTs" / f"{case}.nii.gz")
        np.testing.assert_array_equal(label, voxels(files["seg"]))
        assert set(np.unique(label)) == {0, 1, 2, 4}  # 4 stays 4
        np.testing.assert_array_equal(voxels(target / "masksTs" / f"{case}.nii.gz"), ((t1 > 0) | (t2 > 0)).astype(np.uint8))
    # LPS-like SRI24 orientation is kept, never re-oriented.
    assert direction(target / "imagesTs" / "BraTS20_Training_001_0000.nii.gz") == tuple(float(d) for d in SRI24["direction"])


def test_uncompressed_copy_with_case_355_quirk_cli(tmp_path, disyre_env, caplog):
    replica = write_brats2020(tmp_path, layout="uncompressed", validation=2)
    assert replica.files["BraTS20_Training_355"]["seg"].name == "W39_1998.09.19_Segm.nii"
    with caplog.at_level(logging.INFO):
        assert main(["-i", str(replica.root), "-d", "3"]) == 0

    target = disyre_env["raw"] / "Dataset003_BraTS2020_T1"
    dataset_json = verify_dataset_integrity(target, progress=False)
    assert dataset_json["channel_names"] == {"0": "T1"}
    assert names(target / "labelsTs") == [f"{c}.nii.gz" for c in BRATS_CASES]
    label = voxels(target / "labelsTs" / "BraTS20_Training_355.nii.gz")
    np.testing.assert_array_equal(label, voxels(replica.files["BraTS20_Training_355"]["seg"]).astype(np.uint8))
    assert label.max() == 4
    assert "W39_1998.09.19_Segm.nii as the segmentation of BraTS20_Training_355" in caplog.text
    assert "Skipping 2 BraTS20_Validation case(s)" in caplog.text


def test_missing_files_are_named(tmp_path, disyre_env, capsys):
    replica = write_brats2020(tmp_path, omit=[("BraTS20_Training_002", "t2"), ("BraTS20_Training_001", "seg")])
    folder = replica.root / "MICCAI_BraTS2020_TrainingData"
    with pytest.raises(MissingFilesError) as error:
        convert_brats2020(replica.root, 2, modalities=["t1", "t2"])
    message = str(error.value)
    assert f"BraTS20_Training_001: {folder}/BraTS20_Training_001/BraTS20_Training_001_seg.nii[.gz]" in message
    assert f"BraTS20_Training_002: {folder}/BraTS20_Training_002/BraTS20_Training_002_t2.nii[.gz]" in message
    assert "2 expected file(s) of 2 case(s)" in message
    # t1 alone: only the segmentation is missing; skip it on request.
    assert main(["-i", str(replica.root), "-d", "2", "--skip-incomplete"]) == 0
    assert names(disyre_env["raw"] / "Dataset002_BraTS2020_T1" / "labelsTs") == ["BraTS20_Training_002.nii.gz", "BraTS20_Training_355.nii.gz"]


def test_two_copies_under_root_are_refused(tmp_path, disyre_env):
    write_brats2020(tmp_path, layout="official")
    write_brats2020(tmp_path, layout="uncompressed")
    with pytest.raises(DuplicateFilesError, match=r"Two files are '_t1' of BraTS20_Training_001: \S*BraTS2020_TrainingData\S*_t1\.nii and \S*_t1\.nii\.gz\. "):
        convert_brats2020(tmp_path, 2)
    assert_nothing_written(disyre_env["raw"])


def test_bad_modality_and_empty_root(tmp_path, disyre_env, capsys):
    replica = write_brats2020(tmp_path, cases=BRATS_CASES[:1])
    assert main(["-i", str(replica.root), "-d", "2", "--modalities", "t1", "dwi"]) == 2
    assert "Unknown BraTS modality 'dwi': choose from flair, t1, t1ce, t2" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="No BraTS 2020 case under .*BraTS20_Training_001_t1.nii.gz"):
        convert_brats2020(tmp_path / "empty", 2)


def test_overwrite_and_failure_midway(tmp_path, disyre_env):
    replica = write_brats2020(tmp_path)
    target = convert_brats2020(replica.root, 4, modalities=["flair"])
    with pytest.raises(DatasetExistsError):
        convert_brats2020(replica.root, 4, modalities=["flair"])
    # A failing --overwrite run keeps the old dataset and leaves no staging folder.
    corrupt(replica.files["BraTS20_Training_355"]["flair"])
    with pytest.raises(ImageFormatError, match="BraTS20_Training_355_flair.nii.gz"):
        convert_brats2020(replica.root, 4, modalities=["flair"], overwrite=True)
    assert len(names(target / "imagesTs")) == 3
    assert_nothing_written(disyre_env["raw"], keep=(target.name,))
    # Without an old dataset, the failure leaves nothing at all.
    with pytest.raises(ImageFormatError):
        convert_brats2020(replica.root, 5, modalities=["flair"])
    assert_nothing_written(disyre_env["raw"], keep=(target.name,))
    replica.files["BraTS20_Training_355"]["flair"].unlink()
    assert convert_brats2020(replica.root, 4, modalities=["flair"], overwrite=True, skip_incomplete=True) == target
    assert len(names(target / "imagesTs")) == 2


def test_help_documents_every_flag(capsys):
    text = help_text(main, capsys)
    assert_every_flag_documented(build_parser(), text)
    for flag in ("-i", "-d", "--modalities", "--name", "--overwrite", "--skip_incomplete", "--verbose",
                 "W39_1998.09.19_Segm.nii", "4 enhancing"):
        assert flag in text
