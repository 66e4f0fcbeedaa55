"""disyre_v2_prepare on real whole-head anatomy (ROBEX's reference head, warped by known affines):
alignment, skull stripping, channels, the way back to native space, and bad input."""
import json

import nibabel
import numpy as np
import pytest
import SimpleITK as sitk

from disyre_v2.inference.native_space import load_native_spaces
from disyre_v2.imageio.geometry import Geometry
from disyre_v2.preparation.prepare_case import prepare_scan
from disyre_v2.run import prepare as cli
from tests.head_anatomy import (
    alignment_error_mm,
    dice,
    head_and_mask,
    head_template,
    known_affine,
    warped_head,
    write_template,
)


def native_mask_on(grid: sitk.Image, mask: sitk.Image) -> np.ndarray:
    """A mask with the same physical extent (maybe another axis order) as an array on ``grid``."""
    return sitk.GetArrayFromImage(sitk.Resample(mask, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0)) > 0


@pytest.mark.parametrize("seed, sagittal", [(1, False), (2, True), (3, False)])
def test_template_skull_stripping_recovers_known_affines(tmp_path, seed, sagittal):
    truth = known_affine(seed)
    head, brain = warped_head(truth, sagittal=sagittal)
    path = str(tmp_path / "head_0000.nii.gz")
    sitk.WriteImage(head, path)
    scan = prepare_scan([path], head_template(), skull_strip="template", seed=seed)
    assert alignment_error_mm(scan.transform, truth) <= 2.0
    assert dice(native_mask_on(head, scan.native_brain), sitk.GetArrayFromImage(brain)) >= 0.95
    assert scan.images[0].GetSize() == head_and_mask()[0].GetSize()
    # The scan is stored in the template's orientation; the record keeps the file's own (sagittal) grid.
    assert Geometry.from_image(scan.native_grid) == Geometry.from_image(sitk.ReadImage(path))


def test_robex_finds_the_brain_of_a_warped_head(tmp_path):
    truth = known_affine(4)
    head, brain = warped_head(truth, spacing=2.0)
    path = str(tmp_path / "head_0000.nii.gz")
    sitk.WriteImage(head, path)
    scan = prepare_scan([path], head_template(2.0), skull_strip="robex")
    assert dice(native_mask_on(head, scan.native_brain), sitk.GetArrayFromImage(brain)) >= 0.95
    assert alignment_error_mm(scan.transform, truth, spacing=2.0) <= 2.0


def test_a_t2_moved_rigidly_from_its_t1_lands_on_it(tmp_path):
    truth = known_affine(5)
    t1, _ = warped_head(truth)
    motion = sitk.Euler3DTransform()  # T1 native point -> T2 native point
    motion.SetCenter(truth.TransformPoint(tuple(np.array(head_and_mask()[0].GetOrigin()) + 100)))
    motion.SetRotation(*np.deg2rad([4.0, -6.0, 3.0]))
    motion.SetTranslation((6.0, -4.0, 8.0))
    array = sitk.GetArrayFromImage(t1)
    inverted = sitk.GetImageFromArray(np.where(array > 0, array.max() * 1.2 - array, 0).astype(np.float32))
    inverted.CopyInformation(t1)  # a T2-like contrast of the same head
    t2 = sitk.Resample(inverted, t1, motion.GetInverse(), sitk.sitkLinear, 0.0)
    paths = [str(tmp_path / "a_0000.nii.gz"), str(tmp_path / "a_0001.nii.gz")]
    sitk.WriteImage(t1, paths[0])
    sitk.WriteImage(t2, paths[1])
    scan = prepare_scan(paths, head_template(), skull_strip="template")
    t2_truth = sitk.CompositeTransform([motion, truth])  # template -> T1 native -> T2 native
    assert alignment_error_mm(scan.channel_transforms[1], t2_truth) <= 1.5


def write_raw_case(folder, case, truth, sagittal=False):
    """imagesTs/CASE_0000 (a warped head) and labelsTs/CASE (a 'lesion' drawn in native space)."""
    head, brain = warped_head(truth, sagittal=sagittal)
    (folder / "imagesTs").mkdir(parents=True, exist_ok=True)
    (folder / "labelsTs").mkdir(exist_ok=True)
    sitk.WriteImage(head, str(folder / "imagesTs" / f"{case}_0000.nii.gz"))
    inside = np.argwhere(sitk.GetArrayFromImage(brain) > 0)
    middle = inside[len(inside) // 3]
    zyx = np.indices(sitk.GetArrayFromImage(brain).shape)
    radius = np.linalg.norm((zyx - middle[:, None, None, None]) * np.array(head.GetSpacing())[::-1, None, None, None],
                            axis=0)
    label = sitk.GetImageFromArray(((radius <= 12.0) & (sitk.GetArrayFromImage(brain) > 0)).astype(np.uint8))
    label.CopyInformation(head)
    sitk.WriteImage(label, str(folder / "labelsTs" / f"{case}.nii.gz"))
    return head


def test_a_lesion_drawn_in_native_space_comes_back_where_it_was(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "prepared"
    write_raw_case(raw, "p1", known_affine(6), sagittal=True)
    (raw / "dataset.json").write_text(json.dumps({"name": "Raw", "channel_names": {"0": "T1"}, "labels": {},
                                                  "file_ending": ".nii.gz", "numTraining": 0, "numTest": 1}))
    template, template_mask = write_template(tmp_path)
    assert cli.main(["-i", str(raw), "-o", str(out), "--skull_strip", "template", "--template", template,
                     "--template_mask", template_mask, "--bias_correction"]) == 0
    for name in ("imagesTs/p1_0000.nii.gz", "masksTs/p1.nii.gz", "labelsTs/p1.nii.gz", "preparation/p1.tfm",
                 "preparation/p1_qa.png", "preparation/p1.json", "preparation/options.json"):
        assert (out / name).is_file(), name
    prepared_json = json.loads((out / "dataset.json").read_text())
    assert prepared_json["numTest"] == 1 and prepared_json["masksTs"] and not prepared_json["masksTr"]
    assert prepared_json["preparation"]["skull_strip"] == "template"
    from disyre_v2.dataset.dataset_json import load_dataset_json

    load_dataset_json(out)  # valid for the later stages
    record = json.loads((out / "preparation" / "p1.json").read_text())
    assert record["bias_correction"] and record["skull_strip"] == "template"
    assert record["mutual_information"] > 0.5 and 0.9 < record["brain_volume_ratio"] < 1.1
    # An identity "prediction": the label on the template grid, carried back to the native grid.
    on_template = sitk.ReadImage(str(out / "labelsTs" / "p1.nii.gz"), sitk.sitkFloat32)
    space = load_native_spaces(out, ["p1"])["p1"]
    back = space.resample(sitk.GetArrayFromImage(on_template), Geometry.from_image(on_template))
    sitk.WriteImage(back, str(tmp_path / "back.nii.gz"))
    native_label = sitk.GetArrayFromImage(sitk.ReadImage(str(raw / "labelsTs" / "p1.nii.gz")))
    assert dice(sitk.GetArrayFromImage(back) > 0.5, native_label) >= 0.9
    written, original = nibabel.load(str(tmp_path / "back.nii.gz")), nibabel.load(str(raw / "imagesTs" / "p1_0000.nii.gz"))
    assert written.shape == original.shape
    assert np.allclose(written.affine, original.affine, atol=1e-4)


def write_scan(path, array, spacing=(3.0, 3.0, 3.0)):
    image = sitk.GetImageFromArray(np.asarray(array, np.float32))
    image.SetSpacing(spacing[: image.GetDimension()])
    sitk.WriteImage(image, str(path))


def test_bad_scans_are_named_while_the_good_one_is_prepared_and_nothing_partial_is_left(tmp_path, capsys):
    raw, out = tmp_path / "flat", tmp_path / "prepared"
    raw.mkdir()
    head, _ = warped_head(known_affine(7))
    sitk.WriteImage(head, str(raw / "good_0000.nii.gz"))
    rng = np.random.default_rng(0)
    write_scan(raw / "noise_0000.nii.gz", rng.uniform(0, 1000, (60, 70, 60)))
    write_scan(raw / "flat2d_0000.nii.gz", rng.uniform(0, 1000, (70, 60)))
    (raw / "empty_0000.nii.gz").write_bytes(b"")
    template, template_mask = write_template(tmp_path)
    args = ["-i", str(raw), "-o", str(out), "--skull_strip", "template", "--template", template,
            "--template_mask", template_mask]
    assert cli.main(args + ["-np", "2"]) == 1
    error = capsys.readouterr().err
    assert "3 of 4 case(s) could not be prepared" in error
    for case in ("noise", "flat2d", "empty"):
        assert f"{case}: " in error and f"{case}_0000.nii.gz" in error
    assert "2D" in error  # says why
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == ["good_0000.nii.gz", "masks/good.nii.gz", "preparation/good.json", "preparation/good.tfm",
                       "preparation/good_qa.png", "preparation/options.json"]
    # --continue skips the prepared case and tries the others again.
    before = (out / "preparation" / "good.json").stat().st_mtime_ns
    assert cli.main(args + ["--continue"]) == 1
    assert (out / "preparation" / "good.json").stat().st_mtime_ns == before


def test_a_missing_template_and_an_unusable_combination_are_named(tmp_path, capsys):
    raw = tmp_path / "flat"
    raw.mkdir()
    sitk.WriteImage(warped_head(known_affine(8))[0], str(raw / "a_0000.nii.gz"))
    assert cli.main(["-i", str(raw), "-o", str(tmp_path / "out"), "--template", str(tmp_path / "nope.nii.gz")]) == 2
    assert "nope.nii.gz" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # refused before anything is written: no OUT, no options.json
    # Template skull stripping needs a whole-head template: the default MNI152 is skull-stripped.
    assert cli.main(["-i", str(raw), "-o", str(tmp_path / "out2"), "--skull_strip", "template"]) == 2
    assert "whole-head template" in capsys.readouterr().err
    assert not (tmp_path / "out2").exists()
    # An OUT that exists stays as it was.
    (tmp_path / "out3").mkdir()
    assert cli.main(["-i", str(raw), "-o", str(tmp_path / "out3"), "--skull_strip", "template"]) == 2
    assert "whole-head template" in capsys.readouterr().err
    assert not any((tmp_path / "out3").iterdir())


def test_a_tiny_scan_is_refused_quoting_itks_reason_whole(tmp_path, capsys):
    raw, out = tmp_path / "flat", tmp_path / "prepared"
    raw.mkdir()
    write_scan(raw / "tiny_0000.nii.gz", np.random.default_rng(0).uniform(1, 1000, (3, 3, 3)))
    assert cli.main(["-i", str(raw), "-o", str(out)]) == 1
    error = capsys.readouterr().err
    line = next(line for line in error.splitlines() if line.startswith("  - tiny: "))
    # ITK's sentence whole, on the case's one line, with the scan's size; no pointer, no cut word.
    assert "the registration to the template failed for a scan of 3×3×3 voxels" in line
    assert ("SmoothingRecursiveGaussianImageFilter: The number of pixels along dimension 0 is less than 4. This "
            "filter requires a minimum of four pixels along the dimension to be processed.)") in line
    assert "0x" not in line and "tiny_0000.nii.gz" in line and "too small" in line
    assert [p.name for p in out.rglob("*") if p.is_file()] == ["options.json"]


def test_predict_native_space_writes_maps_on_the_original_scans(tmp_path):
    from disyre_v2.inference.predict_folder import predict_folder
    from tests.test_predictor import Constant, predictor

    raw, prepared = tmp_path / "raw", tmp_path / "prepared"
    truth = known_affine(9)
    write_raw_case(raw, "p2", truth, sagittal=True)
    template, template_mask = write_template(tmp_path)
    assert cli.main(["-i", str(raw), "-o", str(prepared), "--skull_strip", "template", "--template", template,
                     "--template_mask", template_mask]) == 0
    # A network that restores everything to 0 scores each brain voxel by its own (normalised) intensity,
    # so the native map must look like the native scan inside the brain.
    maps = tmp_path / "maps"
    predict_folder(predictor(Constant(0.0), score="singlestep", levels=[0]), prepared / "imagesTs", maps,
                   native_space=prepared)
    native = nibabel.load(str(maps / "native" / "p2.nii.gz"))
    original = nibabel.load(str(raw / "imagesTs" / "p2_0000.nii.gz"))
    assert native.shape == original.shape and np.allclose(native.affine, original.affine, atol=1e-4)
    score = np.asarray(native.dataobj)
    brain = score > 0
    assert brain.sum() > 0.8 * np.count_nonzero(sitk.GetArrayFromImage(warped_head(truth)[1]))
    assert np.corrcoef(score[brain], np.asarray(original.dataobj)[brain])[0, 1] > 0.9
    # --binary: the mask comes back on the native scan too, where it matches the native map thresholded.
    from disyre_v2.inference.decisions import BinaryDecision

    template_map = sitk.GetArrayFromImage(sitk.ReadImage(str(maps / "p2.nii.gz")))
    threshold = float(np.median(template_map[template_map > 0]))
    decision = BinaryDecision(threshold, 1e-3, 0.05, 0.0, (0.1, 0.2), "test")
    predict_folder(predictor(Constant(0.0), score="singlestep", levels=[0]), prepared / "imagesTs", tmp_path / "bin",
                   native_space=prepared, decision=decision)
    native_mask = nibabel.load(str(tmp_path / "bin" / "native" / "p2_mask.nii.gz"))
    assert native_mask.shape == original.shape and np.allclose(native_mask.affine, original.affine, atol=1e-4)
    positive, expected = np.asarray(native_mask.dataobj) > 0, score > threshold
    assert set(np.unique(np.asarray(native_mask.dataobj))) <= {0, 1} and positive.sum() > 0
    assert 2 * (positive & expected).sum() / (positive.sum() + expected.sum()) > 0.9
    # A case without a preparation record is refused before anything is scored.
    (prepared / "preparation" / "p2.json").unlink()
    with pytest.raises(ValueError, match="p2 has no preparation record"):
        predict_folder(predictor(Constant(0.0), score="singlestep", levels=[0]), prepared / "imagesTs",
                       tmp_path / "maps2", native_space=prepared)
    assert not (tmp_path / "maps2").exists()


def test_a_given_brain_mask_is_used_and_must_share_the_scan_grid(tmp_path):
    from disyre_v2.imageio.errors import ImageFormatError

    truth = known_affine(10)
    head, brain = warped_head(truth, sagittal=True)
    paths = [str(tmp_path / "m_0000.nii.gz"), str(tmp_path / "m_mask.nii.gz")]
    sitk.WriteImage(head, paths[0])
    sitk.WriteImage(brain, paths[1])  # NIfTI stores the header in float32: equal within tolerance
    scan = prepare_scan([paths[0]], head_template(), mask_path=paths[1], skull_strip="robex")  # the mask wins
    assert alignment_error_mm(scan.transform, truth) <= 2.0
    assert dice(native_mask_on(head, scan.native_brain), sitk.GetArrayFromImage(brain)) == 1.0
    shifted = sitk.Image(brain)
    shifted.SetOrigin(tuple(np.add(brain.GetOrigin(), (5.0, 0.0, 0.0))))
    sitk.WriteImage(shifted, str(tmp_path / "shifted_mask.nii.gz"))
    with pytest.raises(ImageFormatError, match="shifted_mask.nii.gz is not on the grid of .*m_0000.nii.gz"):
        prepare_scan([paths[0]], head_template(), mask_path=str(tmp_path / "shifted_mask.nii.gz"))


def test_continue_refuses_other_options_than_the_folder_was_prepared_with(tmp_path, capsys):
    raw, out = tmp_path / "flat", tmp_path / "prepared"
    raw.mkdir()
    sitk.WriteImage(warped_head(known_affine(11))[0], str(raw / "a_0000.nii.gz"))
    template, template_mask = write_template(tmp_path)
    args = ["-i", str(raw), "-o", str(out), "--skull_strip", "template", "--template", template,
            "--template_mask", template_mask]
    assert cli.main(args) == 0
    assert cli.main(args + ["--continue", "--bias_correction"]) == 2
    assert "options.json" in capsys.readouterr().err
    assert json.loads((out / "preparation" / "options.json").read_text())["bias_correction"] is False


def test_channels_are_checked_and_name_the_channels_of_a_new_dataset_json(tmp_path, capsys):
    from disyre_v2.dataset.dataset_json import load_dataset_json

    raw, out = tmp_path / "raw", tmp_path / "prepared"
    write_raw_case(raw, "q1", known_affine(12))
    template, template_mask = write_template(tmp_path)
    args = ["-i", str(raw), "-o", str(out), "--skull_strip", "template", "--template", template,
            "--template_mask", template_mask]
    assert cli.main(args + ["--channels", "T1", "T2"]) == 2
    assert "--channels names 2 channel(s) but the cases have 1" in capsys.readouterr().err
    assert not list(out.rglob("*.nii.gz"))
    assert cli.main(args + ["--channels", "T1"]) == 0
    data = load_dataset_json(out)  # no dataset.json in the input: one is written, valid for planning
    assert data["channel_names"] == {"0": "T1"} and data["numTest"] == 1 and data["labelsTs"] and data["masksTs"]
    assert json.loads((out / "preparation" / "options.json").read_text())["channels"] == ["T1"]
