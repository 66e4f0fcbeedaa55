"""disyre_v2_convert_atlas on miniature replicas of the ATLAS R2.0 tree."""
import logging

import numpy as np
import pytest

from disyre_v2.dataset import verify_dataset_integrity
from disyre_v2.dataset_conversion.atlas import convert_atlas
from disyre_v2.dataset_conversion.conversion_plan import MissingFilesError
from disyre_v2.dataset_conversion.raw_dataset_writer import DatasetExistsError
from disyre_v2.imageio import ImageFormatError
from disyre_v2.run.convert_atlas import build_parser, main
from tests.conversion_checks import (
    assert_every_flag_documented, assert_nothing_written, corrupt, direction, help_text, names, voxels,
)
from tests.replicas import MNI_2009A, SRI24, write_atlas

CASES = ["sub-r001s001_ses-1", "sub-r001s002_ses-1", "sub-r002s001_ses-1"]


def test_raw_training_tree_api(tmp_path, disyre_env, caplog):
    replica = write_atlas(tmp_path)
    with caplog.at_level(logging.WARNING):
        target = convert_atlas(replica.root, 2)

    assert target == disyre_env["raw"] / "Dataset002_ATLAS"
    dataset_json = verify_dataset_integrity(target, progress=False)
    assert (dataset_json["numTraining"], dataset_json["numTest"], dataset_json["labelsTs"]) == (0, 3, True)
    assert dataset_json["labels"] == {"background": 0, "lesion": 1}
    assert names(target / "imagesTs") == [f"{c}_0000.nii.gz" for c in CASES]
    assert names(target / "labelsTs") == [f"{c}.nii.gz" for c in CASES]
    for case in CASES:
        np.testing.assert_array_equal(voxels(target / "labelsTs" / f"{case}.nii.gz"), voxels(replica.files[case]["mask"]))
        np.testing.assert_array_equal(voxels(target / "imagesTs" / f"{case}_0000.nii.gz"), voxels(replica.files[case]["T1"]))
    assert direction(target / "imagesTs" / f"{CASES[0]}_0000.nii.gz") == tuple(float(d) for d in MNI_2009A["direction"])
    # Testing has no masks: skipped with a warning; whole-head images: a warning too.
    assert "Skipping 1 subject(s) under Testing" in caplog.text
    assert "whole-head" in caplog.text
    assert "sub-r003s001" not in " ".join(names(target / "imagesTs"))


def test_derivatives_preferred_with_registered_masks_cli(tmp_path, disyre_env):
    replica = write_atlas(tmp_path, derivatives=True)
    assert main(["-i", str(replica.root), "-d", "12"]) == 0

    target = disyre_env["raw"] / "Dataset012_ATLAS"
    verify_dataset_integrity(target, progress=False)
    for case in CASES:
        np.testing.assert_array_equal(voxels(target / "imagesTs" / f"{case}_0000.nii.gz"), voxels(replica.files[case]["T1_derived"]))
        np.testing.assert_array_equal(voxels(target / "labelsTs" / f"{case}.nii.gz"), voxels(replica.files[case]["mask_registered"]))
        # Skull-stripped: the brain mask is the stripped image's support.
        np.testing.assert_array_equal(voxels(target / "masksTs" / f"{case}.nii.gz"),
                                      (voxels(replica.files[case]["T1_derived"]) > 0).astype(np.uint8))
    assert direction(target / "imagesTs" / f"{CASES[0]}_0000.nii.gz") == tuple(float(d) for d in SRI24["direction"])


def test_registered_t1_with_unregistered_mask_is_refused(tmp_path, disyre_env):
    replica = write_atlas(tmp_path, derivatives=True, registered_masks=False)
    with pytest.raises(ImageFormatError, match=r"desc-T1lesion_mask\.nii\.gz is not on the grid of the registered image .*same "
                                               r"registration .* as sub-r001s001_ses-1_space-MNI152NLin2009aSym_label-L_desc-"
                                               r"T1lesion_mask_registered\.nii\.gz"):
        convert_atlas(replica.root, 2)
    assert_nothing_written(disyre_env["raw"])


def test_partial_derivatives_name_the_missing_ones(tmp_path, disyre_env):
    replica = write_atlas(tmp_path, derivatives=True, omit=[("sub-r002s001_ses-1", "T1_derived")])
    with pytest.raises(MissingFilesError, match=r"sub-r002s001_ses-1: .*/R002/sub-r002s001/ses-1/anat/"
                                                r"sub-r002s001_ses-1_space-MNI152NLin2009aSym_T1w_stripped_registered\.nii\[\.gz\]"):
        convert_atlas(replica.root, 2)
    assert_nothing_written(disyre_env["raw"])


def test_missing_mask_named_then_skipped(tmp_path, disyre_env, caplog):
    replica = write_atlas(tmp_path, omit=[("sub-r001s002_ses-1", "mask")])
    with pytest.raises(MissingFilesError, match=r"sub-r001s002_ses-1_space-MNI152NLin2009aSym_label-L_desc-T1lesion_mask\.nii\[\.gz\]"):
        convert_atlas(replica.root, 2)
    assert main(["-i", str(replica.root), "-d", "2"]) == 2
    assert_nothing_written(disyre_env["raw"])
    with caplog.at_level(logging.WARNING):
        target = convert_atlas(replica.root, 2, skip_incomplete=True)
    assert "Skipping 1 incomplete case(s)" in caplog.text
    assert names(target / "labelsTs") == ["sub-r001s001_ses-1.nii.gz", "sub-r002s001_ses-1.nii.gz"]


def test_exclude_and_include_lists(tmp_path, disyre_env, caplog):
    replica = write_atlas(tmp_path)
    exclude = tmp_path / "exclude.txt"
    exclude.write_text("r001s002\nsub-r009s009  # not in this tree\n")
    with caplog.at_level(logging.WARNING):
        assert main(["-i", str(replica.root), "-d", "2", "--exclude", str(exclude)]) == 0
    assert names(disyre_env["raw"] / "Dataset002_ATLAS" / "imagesTs") == ["sub-r001s001_ses-1_0000.nii.gz", "sub-r002s001_ses-1_0000.nii.gz"]
    assert "sub-r009s009" in caplog.text  # an entry matching nothing is reported

    include = tmp_path / "subset.txt"
    include.write_text("sub-r001s001_ses-1, sub-r001s002\n")
    target = convert_atlas(replica.root, 3, include=include, exclude=exclude)
    assert names(target / "imagesTs") == ["sub-r001s001_ses-1_0000.nii.gz"]
    # Reports must name the test list used: dataset.json says which lists made the subset.
    description = verify_dataset_integrity(target, progress=False)["description"]
    assert "listed in subset.txt minus those in exclude.txt, 1 cases" in description

    wrong = tmp_path / "wrong.txt"
    wrong.write_text("BraTS20_Training_001\n")
    with pytest.raises(ValueError, match="No entry of --exclude matches"):
        convert_atlas(replica.root, 4, exclude=wrong)


def test_overwrite(tmp_path, disyre_env, capsys):
    replica = write_atlas(tmp_path)
    target = convert_atlas(replica.root, 5)
    with pytest.raises(DatasetExistsError):
        convert_atlas(replica.root, 5)
    exclude = tmp_path / "exclude.txt"
    exclude.write_text("r002s001\n")
    assert main(["-i", str(replica.root), "-d", "5", "--exclude", str(exclude)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert len(names(target / "imagesTs")) == 3
    assert main(["-i", str(replica.root), "-d", "5", "--exclude", str(exclude), "--overwrite"]) == 0
    assert len(names(target / "imagesTs")) == 2
    assert_nothing_written(disyre_env["raw"], keep=(target.name,))


def test_failure_midway_leaves_nothing(tmp_path, disyre_env):
    replica = write_atlas(tmp_path)
    corrupt(replica.files["sub-r002s001_ses-1"]["mask"])
    with pytest.raises(ImageFormatError, match="sub-r002s001_ses-1_space-MNI152NLin2009aSym_label-L_desc-T1lesion_mask"):
        convert_atlas(replica.root, 2)
    assert_nothing_written(disyre_env["raw"])


def test_help_documents_every_flag(capsys):
    text = help_text(main, capsys)
    assert_every_flag_documented(build_parser(), text)
    for flag in ("-i", "-d", "--exclude", "--include", "--name", "--overwrite", "--skip_incomplete", "--verbose", "Testing"):
        assert flag in text
