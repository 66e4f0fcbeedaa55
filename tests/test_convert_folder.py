import json

import numpy as np
import pytest
import SimpleITK as sitk

from disyre_v2.dataset import verify_dataset_integrity
from disyre_v2.dataset_conversion import raw_dataset_writer
from disyre_v2.dataset_conversion.folder import convert_folder
from disyre_v2.run import convert_folder as cli
from tests.nifti_factory import OBLIQUE_DIRECTION, brain_volume, write_nifti

SHAPE = (6, 8, 7)


def write_subjects(folder, names, suffixes=("_t1", "_t2"), ending=".nii.gz"):
    for i, name in enumerate(names):
        for c, suffix in enumerate(suffixes):
            write_nifti(folder / f"{name}{suffix}{ending}", brain_volume(SHAPE, i + 10 * c).astype(np.int16),
                        spacing=(1, 1, 1.5), direction=OBLIQUE_DIRECTION)


def test_train_then_append_test_with_labels(tmp_path, disyre_env):
    write_subjects(tmp_path / "healthy", ["h1", "h2", "h3"])
    write_subjects(tmp_path / "patients", ["p1", "p2"], ending=".nii")
    labels = tmp_path / "seg"
    for name in ("p1", "p2"):
        label = np.zeros(SHAPE, np.uint8)
        label[2:4, 2:4, 2:4] = 2
        write_nifti(labels / f"{name}_seg.nii", label, spacing=(1, 1, 1.5), direction=OBLIQUE_DIRECTION)

    assert cli.main(["-i", str(tmp_path / "healthy"), "-d", "12", "--role", "train", "--name", "Mine",
                     "--channel-suffixes", "_t1", "_t2", "--channel-names", "T1", "T2"]) == 0
    target = convert_folder(tmp_path / "patients", 12, "test", name="Mine", labels=labels,
                            channel_suffixes=["_t1", "_t2"], channel_names=["T1", "T2"], append=True)
    assert target == disyre_env["raw"] / "Dataset012_Mine"
    data = verify_dataset_integrity(target, progress=False)
    assert (data["numTraining"], data["numTest"]) == (3, 2)
    assert data["channel_names"] == {"0": "T1", "1": "T2"}
    assert data["masksTr"] and data["masksTs"] and data["labelsTs"]
    assert sorted(p.name for p in (target / "imagesTs").iterdir()) == [
        "p1_0000.nii.gz", "p1_0001.nii.gz", "p2_0000.nii.gz", "p2_0001.nii.gz"]
    # Images keep their values, pixel type and geometry; masks are derived from the images.
    copied = sitk.ReadImage(str(target / "imagesTr" / "h2_0001.nii.gz"))
    assert copied.GetPixelID() == sitk.sitkInt16
    np.testing.assert_allclose(copied.GetDirection(), OBLIQUE_DIRECTION, atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(copied), brain_volume(SHAPE, 11).astype(np.int16))
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(target / "masksTr" / "h1.nii.gz")))
    np.testing.assert_array_equal(mask, (brain_volume(SHAPE, 0) > 0) | (brain_volume(SHAPE, 10) > 0))
    label = sitk.GetArrayFromImage(sitk.ReadImage(str(target / "labelsTs" / "p1.nii.gz")))
    assert set(np.unique(label)) == {0, 2}
    assert [p.name for p in disyre_env["raw"].iterdir()] == ["Dataset012_Mine"]


def test_single_channel_files_are_cases(tmp_path, disyre_env):
    folder = tmp_path / "imgs"
    for name in ("a", "b"):
        write_nifti(folder / f"{name}.nii.gz", brain_volume(SHAPE))
    target = convert_folder(folder, 3, "train")
    data = json.loads((target / "dataset.json").read_text())
    assert data["channel_names"] == {"0": "image"} and data["numTraining"] == 2
    assert target.name == "Dataset003_Folder"


def test_existing_dataset_refused_without_overwrite(tmp_path, disyre_env, capsys):
    write_subjects(tmp_path / "healthy", ["h1"])
    args = ["-i", str(tmp_path / "healthy"), "-d", "4", "--role", "train", "--channel-suffixes", "_t1", "_t2"]
    assert cli.main(args) == 0
    assert cli.main(args) == 2
    assert "already exists (dataset id 004). Pass --overwrite" in capsys.readouterr().err
    write_subjects(tmp_path / "healthy", ["h2"])
    assert cli.main(args + ["--overwrite"]) == 0
    assert json.loads((disyre_env["raw"] / "Dataset004_Folder" / "dataset.json").read_text())["numTraining"] == 2


def test_same_id_other_name_is_not_overwritten(tmp_path, disyre_env):
    write_subjects(tmp_path / "healthy", ["h1"], suffixes=("",))
    convert_folder(tmp_path / "healthy", 4, "train", name="First")
    with pytest.raises(FileExistsError, match="taken by Dataset004_First"):
        convert_folder(tmp_path / "healthy", 4, "train", name="Second", overwrite=True)


def test_failure_mid_way_leaves_nothing(tmp_path, disyre_env):
    write_subjects(tmp_path / "healthy", ["h1", "h2", "h3"], suffixes=("",))
    volume = brain_volume(SHAPE)
    volume[0, 0, 0] = np.nan
    write_nifti(tmp_path / "healthy" / "h3.nii.gz", volume)
    with pytest.raises(Exception, match=r"h3\.nii\.gz contains 1 NaN"):
        convert_folder(tmp_path / "healthy", 5, "train")
    assert list(disyre_env["raw"].iterdir()) == []


def test_failed_append_keeps_the_old_dataset(tmp_path, disyre_env):
    write_subjects(tmp_path / "healthy", ["h1"], suffixes=("",))
    target = convert_folder(tmp_path / "healthy", 6, "train")
    before = sorted(p.relative_to(target) for p in target.rglob("*"))
    write_nifti(tmp_path / "bad" / "x.nii.gz", brain_volume((3, 3, 3)))
    write_nifti(tmp_path / "badmasks" / "x.nii.gz", np.zeros((3, 3, 3), np.uint8))
    with pytest.raises(Exception, match=r"x\.nii\.gz is empty"):
        convert_folder(tmp_path / "bad", 6, "test", masks=tmp_path / "badmasks", append=True)
    assert sorted(p.relative_to(target) for p in target.rglob("*")) == before
    assert [p.name for p in disyre_env["raw"].iterdir()] == ["Dataset006_Folder"]


def test_append_requires_existing_and_matching_channels(tmp_path, disyre_env):
    write_subjects(tmp_path / "healthy", ["h1"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        convert_folder(tmp_path / "healthy", 7, "test", channel_suffixes=["_t1", "_t2"], append=True)
    convert_folder(tmp_path / "healthy", 7, "train", channel_suffixes=["_t1", "_t2"])
    with pytest.raises(ValueError, match=r"has channels \['t1', 't2'\], the new cases \['T1', 'T2'\]"):
        convert_folder(tmp_path / "healthy", 7, "test", channel_suffixes=["_t1", "_t2"],
                       channel_names=["T1", "T2"], append=True)


def test_missing_channel_and_label_are_named(tmp_path, disyre_env):
    folder = tmp_path / "p"
    write_subjects(folder, ["p1", "p2"])
    (folder / "p2_t2.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"p2: no file p2_t2\.nii\[\.gz\]"):
        convert_folder(folder, 8, "test", channel_suffixes=["_t1", "_t2"])
    write_subjects(folder, ["p2"])
    labels = tmp_path / "labels"
    write_nifti(labels / "p1.nii.gz", np.zeros(SHAPE, np.uint8))
    with pytest.raises(FileNotFoundError, match=r"No label in .*labels for 1 case\(s\): p2"):
        convert_folder(folder, 8, "test", channel_suffixes=["_t1", "_t2"], labels=labels)
    assert list(disyre_env["raw"].iterdir()) == []


def test_grid_mismatch_between_channels(tmp_path, disyre_env):
    folder = tmp_path / "p"
    write_subjects(folder, ["p1"])
    write_nifti(folder / "p1_t2.nii.gz", brain_volume(SHAPE), spacing=(2, 2, 2))
    with pytest.raises(Exception, match=r"p1_t2\.nii\.gz is not on the grid of .*p1_t1\.nii\.gz: spacing"):
        convert_folder(folder, 8, "train", channel_suffixes=["_t1", "_t2"])


def test_labels_refused_for_training(tmp_path, disyre_env):
    with pytest.raises(ValueError, match="Labels belong to test cases"):
        convert_folder(tmp_path, 8, "train", labels=tmp_path)


def test_missing_environment_variable_is_reported(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("DISYRE_raw", raising=False)
    write_subjects(tmp_path / "h", ["h1"], suffixes=("",))
    assert cli.main(["-i", str(tmp_path / "h"), "-d", "1", "--role", "train"]) == 2
    assert "DISYRE_raw is not set" in capsys.readouterr().err


def test_help_documents_every_flag(capsys):
    with pytest.raises(SystemExit):
        cli.main(["-h"])
    text = capsys.readouterr().out
    for flag in ("--input", "--dataset_id", "--role", "--name", "--labels", "--masks", "--channel_suffixes",
                 "--channel_names", "--overwrite", "--append", "--verbose"):
        assert flag in text


def test_writer_refuses_duplicate_and_unsafe_case_names(tmp_path):
    path = write_nifti(tmp_path / "a.nii.gz", brain_volume(SHAPE))
    with pytest.raises(ValueError, match="added twice"):
        with raw_dataset_writer.RawDatasetWriter(1, "X", ["T1"], raw_base=tmp_path / "raw") as writer:
            writer.add_training_case("a", [path])
            writer.add_test_case("a", [path])
    with pytest.raises(ValueError, match="not safe as a file name"):
        with raw_dataset_writer.RawDatasetWriter(1, "X", ["T1"], raw_base=tmp_path / "raw") as writer:
            writer.add_training_case("a/b", [path])
    assert list((tmp_path / "raw").iterdir()) == []


def test_only_the_top_level_of_the_input_is_read(tmp_path, disyre_env, capsys):
    """-h says it, a folder per patient is refused naming the fix, and nested files are not taken."""
    assert "subfolders are not searched" in cli.build_parser().format_help()
    for name in ("p1", "p2"):
        write_nifti(tmp_path / "export" / name / f"{name}.nii.gz", brain_volume(SHAPE))
    assert cli.main(["-i", str(tmp_path / "export"), "-d", "5", "--role", "test"]) == 2
    error = capsys.readouterr().err
    assert "only subfolders hold some (2" in error and "top level of -i only" in error
    assert not list(disyre_env["raw"].iterdir())
    write_nifti(tmp_path / "export" / "p3.nii.gz", brain_volume(SHAPE))
    target = convert_folder(tmp_path / "export", 5, "test")
    assert sorted(p.name for p in (target / "imagesTs").iterdir()) == ["p3_0000.nii.gz"]


def test_appended_cases_must_be_prepared_as_the_dataset_was(tmp_path, disyre_env):
    """Healthy scans prepared onto a template and patients appended without --prepare (or onto another
    template) would sit in different spaces: refused before anything is prepared or written."""
    from disyre_v2.errors import UserError
    from disyre_v2.preparation.prepare_folder import PreparationOptions

    for folder, name in (("healthy", "h1"), ("patients", "p1")):
        write_nifti(tmp_path / folder / f"{name}.nii.gz", brain_volume(SHAPE))
    target = convert_folder(tmp_path / "healthy", 10, "train", name="MyHospital")
    # Unprepared dataset, prepared patients: refused.
    with pytest.raises(UserError, match="without --prepare"):
        convert_folder(tmp_path / "patients", 10, "test", name="MyHospital", append=True,
                       preparation=PreparationOptions())
    # A dataset prepared onto one template (as --prepare records it) ...
    (target / "preparation").mkdir()
    (target / "preparation" / "options.json").write_text(json.dumps(
        {"template": "mni152_2009a", "template_mask": None, "skull_strip": "robex", "bias_correction": True,
         "seed": 0}))
    with pytest.raises(UserError, match="--prepare --template mni152_2009a"):
        convert_folder(tmp_path / "patients", 10, "test", name="MyHospital", append=True)
    with pytest.raises(UserError, match="--template other.nii.gz"):
        convert_folder(tmp_path / "patients", 10, "test", name="MyHospital", append=True,
                       preparation=PreparationOptions(template="other.nii.gz", skull_strip="robex"))
    assert not (target / "imagesTs").exists()
    assert not [p for p in disyre_env["raw"].iterdir() if p.name.startswith(".")]
