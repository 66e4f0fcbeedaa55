"""disyre_v2_convert_camcan on miniature replicas of the CamCAN tree."""
import json
import logging

import numpy as np
import pytest

from disyre_v2.dataset import verify_dataset_integrity
from disyre_v2.dataset_conversion.camcan import RawScansOnlyError, convert_camcan
from disyre_v2.dataset_conversion.conversion_plan import MissingFilesError
from disyre_v2.dataset_conversion.file_search import index_niftis
from disyre_v2.dataset_conversion.raw_dataset_writer import DatasetExistsError
from disyre_v2.imageio import ImageFormatError
from disyre_v2.run.convert_camcan import build_parser, main
from tests.conversion_checks import (
    assert_every_flag_documented, assert_nothing_written, corrupt, direction, help_text, names, voxels,
)
from tests.replicas import SRI24, write_camcan


def test_flat_derivatives_two_channels_api(tmp_path, disyre_env):
    replica = write_camcan(tmp_path / "camcan", derivatives="flat")

    target = convert_camcan(replica.root, 1, modalities=["t1", "T2w"])

    assert target == disyre_env["raw"] / "Dataset001_CamCAN_T1_T2"
    dataset_json = verify_dataset_integrity(target, progress=False)
    assert dataset_json["channel_names"] == {"0": "T1", "1": "T2"}
    assert (dataset_json["numTraining"], dataset_json["numTest"]) == (3, 0)
    assert names(target / "imagesTr") == [f"{s}_{c:04d}.nii.gz" for s in ("CC110033", "CC110037", "CC120065") for c in (0, 1)]
    files = replica.files["CC110037"]
    t1, t2 = voxels(files["T1"]), voxels(files["T2"])
    np.testing.assert_array_equal(voxels(target / "imagesTr" / "CC110037_0000.nii.gz"), t1)
    np.testing.assert_array_equal(voxels(target / "imagesTr" / "CC110037_0001.nii.gz"), t2)
    np.testing.assert_array_equal(voxels(target / "masksTr" / "CC110037.nii.gz"), ((t1 > 0) | (t2 > 0)).astype(np.uint8))
    assert direction(target / "imagesTr" / "CC110037_0000.nii.gz") == tuple(float(d) for d in SRI24["direction"])


def test_nested_uncompressed_with_validation_list_cli(tmp_path, disyre_env):
    replica = write_camcan(tmp_path / "camcan", derivatives="nested", compressed=False)
    validation = tmp_path / "val.txt"
    validation.write_text("# held-out healthy subjects\nsub-CC110037\nCC120065  # second\n")

    code = main(["-i", str(replica.root), "-d", "7", "--validation-list", str(validation), "--name", "CamCANval"])

    assert code == 0
    target = disyre_env["raw"] / "Dataset007_CamCANval"
    dataset_json = verify_dataset_integrity(target, progress=False)
    assert dataset_json["channel_names"] == {"0": "T1"}  # default: T1 only, one model per modality
    assert names(target / "imagesTr") == ["CC110033_0000.nii.gz"]
    assert names(target / "imagesTs") == ["CC110037_0000.nii.gz", "CC120065_0000.nii.gz"]
    assert not (target / "labelsTs").exists()
    assert json.loads((target / "dataset.json").read_text())["validationCases"] == ["CC110037", "CC120065"]
    np.testing.assert_array_equal(voxels(target / "imagesTs" / "CC120065_0000.nii.gz"), voxels(replica.files["CC120065"]["T1"]))


def test_raw_scans_only_are_refused(tmp_path, disyre_env, capsys):
    replica = write_camcan(tmp_path / "camcan", derivatives=None)

    with pytest.raises(RawScansOnlyError, match="skull stripping .* and affine registration"):
        convert_camcan(replica.root, 1)
    assert main(["-i", str(replica.root), "-d", "1"]) == 2
    message = capsys.readouterr().err
    assert "raw CamCAN scan" in message and "sub-CC110033_T1w_stripped_registered.nii[.gz]" not in message
    assert "sub-CCxxxxxx_T1w_stripped_registered.nii[.gz]" in message
    assert_nothing_written(disyre_env["raw"])


def test_empty_folder_names_expected_files(tmp_path, disyre_env):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"No CamCAN image .* sub-CCxxxxxx_T2w_stripped_registered"):
        convert_camcan(tmp_path / "empty", 1, modalities=["T2"])
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        convert_camcan(tmp_path / "absent", 1)


def test_missing_derivative_is_named_then_skipped_on_request(tmp_path, disyre_env, caplog):
    replica = write_camcan(tmp_path / "camcan", omit=[("CC110037", "T2")])
    expected = str(replica.root / "camcan_registered" / "sub-CC110037_T2w_stripped_registered.nii[.gz]")

    with pytest.raises(MissingFilesError) as error:
        convert_camcan(replica.root, 1, modalities=["T1", "T2"])
    assert f"CC110037: {expected}" in str(error.value) and "--skip_incomplete" in str(error.value)
    assert_nothing_written(disyre_env["raw"])

    with caplog.at_level(logging.WARNING):
        target = convert_camcan(replica.root, 1, modalities=["T1", "T2"], skip_incomplete=True)
    assert expected in caplog.text
    assert verify_dataset_integrity(target, progress=False)["numTraining"] == 2
    # T1 alone is complete for every subject.
    assert verify_dataset_integrity(convert_camcan(replica.root, 2), progress=False)["numTraining"] == 3


def test_validation_list_with_unknown_subject(tmp_path, disyre_env):
    replica = write_camcan(tmp_path / "camcan")
    validation = tmp_path / "val.txt"
    validation.write_text("CC110037\nCC999999\n")
    with pytest.raises(ValueError, match=r"(?s)1 subject\(s\) not found.*- CC999999"):
        convert_camcan(replica.root, 1, validation_list=validation)
    with pytest.raises(FileNotFoundError, match="--validation_list"):
        convert_camcan(replica.root, 1, validation_list=tmp_path / "nope.txt")
    assert_nothing_written(disyre_env["raw"])


def test_overwrite(tmp_path, disyre_env, capsys):
    replica = write_camcan(tmp_path / "camcan")
    target = convert_camcan(replica.root, 3)
    before = (target / "dataset.json").read_text()

    with pytest.raises(DatasetExistsError, match="--overwrite"):
        convert_camcan(replica.root, 3)
    assert main(["-i", str(replica.root), "-d", "3"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (target / "dataset.json").read_text() == before

    replica.files["CC120065"]["T1"].unlink()
    assert main(["-i", str(replica.root), "-d", "3", "--overwrite", "--skip-incomplete"]) == 0
    assert names(target / "imagesTr") == ["CC110033_0000.nii.gz", "CC110037_0000.nii.gz"]
    assert_nothing_written(disyre_env["raw"], keep=(target.name,))


def test_failure_midway_leaves_nothing(tmp_path, disyre_env):
    replica = write_camcan(tmp_path / "camcan")
    corrupt(replica.files["CC120065"]["T1"])  # the last subject: two were already copied
    with pytest.raises(ImageFormatError, match="sub-CC120065_T1w_stripped_registered"):
        convert_camcan(replica.root, 1)
    assert_nothing_written(disyre_env["raw"])


def test_help_documents_every_flag(capsys):
    text = help_text(main, capsys)
    assert_every_flag_documented(build_parser(), text)
    for flag in ("-i", "--input", "-d", "--modalities", "--validation_list", "--name", "--overwrite",
                 "--skip_incomplete", "--verbose", "skull stripping"):
        assert flag in text


def test_file_index_skips_hidden_files_and_accepts_both_endings(tmp_path):
    replica = write_camcan(tmp_path / "camcan", subjects=("CC110033",), raw=False, compressed=False)
    folder = replica.root / "camcan_registered"
    (folder / "._sub-CC110033_T1w_stripped_registered.nii").write_bytes(b"\0" * 10)  # macOS resource file
    (folder / ".cache").mkdir()
    (folder / ".cache" / "sub-CC110033_T1w_stripped_registered.nii.gz").write_bytes(b"\0" * 10)
    (folder / "notes.NII.GZ").write_bytes(b"\0")
    stems = [(f.path.name, f.stem) for f in index_niftis(replica.root)]
    assert stems == [("notes.NII.GZ", "notes"), ("sub-CC110033_T1w_stripped_registered.nii", "sub-CC110033_T1w_stripped_registered"),
                     ("sub-CC110033_T2w_stripped_registered.nii", "sub-CC110033_T2w_stripped_registered")]
