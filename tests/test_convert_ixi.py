"""disyre_v2_convert_ixi on miniature replicas of the IXI tree."""
import logging

import numpy as np
import pytest

from disyre_v2.dataset import verify_dataset_integrity
from disyre_v2.dataset_conversion.conversion_plan import MissingFilesError
from disyre_v2.dataset_conversion.ixi import UnstrippedScansError, convert_ixi
from disyre_v2.dataset_conversion.raw_dataset_writer import DatasetExistsError
from disyre_v2.imageio import ImageFormatError
from disyre_v2.run.convert_ixi import build_parser, main
from tests.conversion_checks import (
    assert_every_flag_documented, assert_nothing_written, direction, help_text, names, voxels,
)
from tests.replicas import IXI_SUBJECTS, SAGITTAL, write_ixi


def test_whole_head_scans_alone_are_refused(tmp_path, disyre_env, capsys):
    replica = write_ixi(tmp_path)
    with pytest.raises(UnstrippedScansError, match=r"Found 3 IXI T1 scan\(s\) .* no skull-stripped copy and no brain masks"):
        convert_ixi(replica.root, 1, "T1")
    assert main(["-i", str(replica.root), "-d", "1", "--modality", "T2"]) == 2
    message = capsys.readouterr().err
    assert "IXI002-Guys-0828-T2_stripped.nii.gz" in message and "--masks" in message
    assert_nothing_written(disyre_env["raw"])


def test_stripped_copies_api(tmp_path, disyre_env):
    replica = write_ixi(tmp_path, stripped=True)
    target = convert_ixi(replica.root, 1, "t1")

    assert target == disyre_env["raw"] / "Dataset001_IXI_T1"
    dataset_json = verify_dataset_integrity(target, progress=False)
    assert dataset_json["channel_names"] == {"0": "T1"}
    assert names(target / "imagesTr") == [f"{s}_0000.nii.gz" for s in IXI_SUBJECTS]
    for subject in IXI_SUBJECTS:
        stripped = voxels(replica.files[subject]["T1_stripped"])
        np.testing.assert_array_equal(voxels(target / "imagesTr" / f"{subject}_0000.nii.gz"), stripped)
        np.testing.assert_array_equal(voxels(target / "masksTr" / f"{subject}.nii.gz"), (stripped > 0).astype(np.uint8))
    # IXI T1 is sagittal: the direction is copied, not re-oriented.
    assert direction(target / "imagesTr" / f"{IXI_SUBJECTS[0]}_0000.nii.gz") == tuple(float(d) for d in SAGITTAL)


def test_masks_folder_cli(tmp_path, disyre_env, caplog):
    replica = write_ixi(tmp_path, stripped=True, masks=True)
    with caplog.at_level(logging.INFO):
        code = main(["-i", str(replica.root), "-d", "8", "--modality", "t2", "--masks", str(tmp_path / "IXI-T2-masks")])
    assert code == 0
    target = disyre_env["raw"] / "Dataset008_IXI_T2"
    verify_dataset_integrity(target, progress=False)
    for subject in IXI_SUBJECTS:
        files = replica.files[subject]
        # The whole-head scan is copied; the given mask delimits the brain.
        np.testing.assert_array_equal(voxels(target / "imagesTr" / f"{subject}_0000.nii.gz"), voxels(files["T2"]))
        np.testing.assert_array_equal(voxels(target / "masksTr" / f"{subject}.nii.gz"), voxels(files["T2_mask"]))
        assert (voxels(files["T2"]) > 0).all() and not voxels(files["T2_mask"]).all()
    assert "stripped file(s) are ignored" in caplog.text


def test_mask_names_matched_per_modality(tmp_path, disyre_env):
    replica = write_ixi(tmp_path, modalities=("T1",), subjects=IXI_SUBJECTS[:2], masks=True)
    masks = tmp_path / "IXI-T1-masks"
    # Another naming (subject_mask) is accepted; a T2 mask is not taken for T1.
    replica.files[IXI_SUBJECTS[1]]["T1_mask"].rename(masks / f"{IXI_SUBJECTS[1]}_mask.nii.gz")
    (masks / f"{IXI_SUBJECTS[0]}-T2_mask.nii.gz").write_bytes(b"\0")
    target = convert_ixi(replica.root, 1, "T1", masks=masks)
    assert names(target / "masksTr") == [f"{s}.nii.gz" for s in IXI_SUBJECTS[:2]]

    (masks / f"{IXI_SUBJECTS[0]}-T1_brainmask.nii.gz").write_bytes(b"\0")
    with pytest.raises(ValueError, match=r"Several files .* brain mask of IXI002-Guys-0828"):
        convert_ixi(replica.root, 2, "T1", masks=masks)


def test_masks_named_like_the_scans_inside_the_root(tmp_path, disyre_env):
    replica = write_ixi(tmp_path, modalities=("T1",), masks=True)
    masks = tmp_path / "IXI-T1-masks"
    for subject in IXI_SUBJECTS:
        replica.files[subject]["T1_mask"].rename(masks / f"{subject}-T1.nii.gz")
    target = convert_ixi(tmp_path, 1, "T1", masks=masks)
    np.testing.assert_array_equal(voxels(target / "imagesTr" / f"{IXI_SUBJECTS[0]}_0000.nii.gz"),
                                  voxels(replica.files[IXI_SUBJECTS[0]]["T1"]))
    np.testing.assert_array_equal(voxels(target / "masksTr" / f"{IXI_SUBJECTS[0]}.nii.gz"),
                                  voxels(masks / f"{IXI_SUBJECTS[0]}-T1.nii.gz"))


def test_missing_mask_named_then_skipped(tmp_path, disyre_env, caplog):
    replica = write_ixi(tmp_path, modalities=("T1",), masks=True, omit=[("IXI012-HH-1211", "T1_mask")])
    masks = tmp_path / "IXI-T1-masks"
    with pytest.raises(MissingFilesError, match=rf"IXI012-HH-1211: {masks}/IXI012-HH-1211-T1_mask\.nii\[\.gz\]"):
        convert_ixi(replica.root, 1, "T1", masks=masks)
    assert_nothing_written(disyre_env["raw"])
    with caplog.at_level(logging.WARNING):
        target = convert_ixi(replica.root, 1, "T1", masks=masks, skip_incomplete=True)
    assert names(target / "imagesTr") == ["IXI002-Guys-0828_0000.nii.gz", "IXI035-IOP-0873_0000.nii.gz"]
    assert "IXI012-HH-1211" in caplog.text


def test_mask_on_another_grid_fails_midway_and_leaves_nothing(tmp_path, disyre_env):
    replica = write_ixi(tmp_path, masks=True)
    # T1 and T2 are not co-registered: a T2 mask given for the last T1 scan is on the wrong grid.
    last = IXI_SUBJECTS[-1]
    replica.files[last]["T2_mask"].replace(replica.files[last]["T1_mask"])
    with pytest.raises(ImageFormatError, match=rf"{last}-T1_mask.nii.gz is not on the grid of .*{last}-T1.nii.gz"):
        convert_ixi(replica.root, 1, "T1", masks=tmp_path / "IXI-T1-masks")
    assert_nothing_written(disyre_env["raw"])


def test_overwrite(tmp_path, disyre_env, capsys):
    replica = write_ixi(tmp_path, modalities=("T1",), stripped=True)
    target = convert_ixi(replica.root, 6, "T1")
    with pytest.raises(DatasetExistsError):
        convert_ixi(replica.root, 6, "T1")
    replica.files[IXI_SUBJECTS[0]]["T1_stripped"].unlink()
    assert main(["-i", str(replica.root), "-d", "Dataset006_IXI_T1", "--modality", "T1", "--skip-incomplete"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert len(names(target / "imagesTr")) == 3
    assert main(["-i", str(replica.root), "-d", "6", "--modality", "T1", "--skip-incomplete", "--overwrite"]) == 0
    assert len(names(target / "imagesTr")) == 2
    assert_nothing_written(disyre_env["raw"], keep=(target.name,))


def test_modality_flag_is_checked(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["-i", str(tmp_path), "-d", "1", "--modality", "FLAIR"])
    assert exit_.value.code == 2
    assert "invalid choice: 'FLAIR'" in capsys.readouterr().err


def test_help_documents_every_flag(capsys):
    text = help_text(main, capsys)
    assert_every_flag_documented(build_parser(), text)
    for flag in ("-i", "-d", "--modality", "--masks", "--name", "--overwrite", "--skip_incomplete", "--verbose",
                 "NOT registered to each other"):
        assert flag in text
