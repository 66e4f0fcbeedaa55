"""From maps to decisions through the CLI, on tiny data: train two folds → calibrate on their
validation cases (or a folder) → predict --binary (masks, lesions.csv, p-values, flags) → evaluate at
the operating point; uncertainty maps; sharded evaluation; and the refusals."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk

from disyre_v2.inference.calibration import load_calibration, volume_p_value
from disyre_v2.inference.lesions import find_lesions
from disyre_v2.imageio.geometry import Geometry
from disyre_v2.run import calibrate as calibrate_cli
from disyre_v2.run import evaluate as evaluate_cli
from disyre_v2.run import predict as predict_cli
from disyre_v2.run import train as train_cli
from tests.trainer_fixtures import make_environment, make_preprocessed_dataset, point_environment_at


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("decisions")
    with pytest.MonkeyPatch.context() as patch:
        make_environment(patch, root)
        name = make_preprocessed_dataset(root, n_train=5, n_test=3)
        for fold in ("0", "1"):
            assert train_cli.main(["1", "2d_small", fold, "--steps", "2"]) == 0
    return root, name


@pytest.fixture
def env(trained, monkeypatch, tmp_path):
    root, name = trained
    point_environment_at(monkeypatch, root)
    return root, name, tmp_path


def read(path):
    image = sitk.ReadImage(str(path))
    return sitk.GetArrayFromImage(image), Geometry.from_image(image)


def model_folder(root, name):
    return root / "res" / name / "DisyreTrainer__DisyrePlans__2d_small"


def calibrate(*flags):
    return calibrate_cli.main(["-d", "1", "-c", "2d_small", "--no_progress", *flags])


def predict(root, name, out, *flags):
    """The exit status (argparse's own refusals exit 2 through SystemExit)."""
    try:
        return _predict(root, name, out, *flags)
    except SystemExit as stop:
        return stop.code


def _predict(root, name, out, *flags):
    return predict_cli.main(["-i", str(root / "raw" / name / "imagesTs"), "-o", str(out), "-d", "1", "-c", "2d_small",
                             *flags])


def test_calibrate_predict_binary_evaluate(env, caplog):
    root, name, tmp_path = env
    # Default source: each fold's validation cases (1 per fold here), scored by that fold's models only.
    assert calibrate("-f", "0", "1") == 0
    assert "give coarse volume p-values" in caplog.text  # 2 healthy volumes < 5: warned, with the figure
    files = sorted((model_folder(root, name) / "calibrations").glob("calibration_*.json"))
    assert len(files) == 1
    calibration = load_calibration(files[0])
    splits = json.loads((root / "pre" / name / "splits_final.json").read_text())
    assert calibration.cases == splits[0]["val"] + splits[1]["val"] and calibration.num_volumes == 2
    assert calibration.settings["runs"] == ["fold_0_seed_0", "fold_1_seed_0"]
    assert calibration.settings["median_filter_size"] == 3 and calibration.settings["score"] == "ensemble"

    out = tmp_path / "maps"
    assert predict(root, name, out, "-f", "0", "1", "--binary", "--voxel_fpr", "0.01", "--volume_alpha", "0.5") == 0
    threshold = calibration.voxel_threshold(0.01)
    rows = list(csv.DictReader((out / "lesions.csv").open()))
    scores = list(csv.DictReader((out / "volume_scores.csv").open()))
    assert [s["case_id"] for s in scores] == ["test00", "test01", "test02"]
    for case in ("test00", "test01", "test02"):
        anomaly_map, geometry = read(out / f"{case}.nii.gz")
        mask, mask_geometry = read(out / f"{case}_mask.nii.gz")
        brain = read(root / "raw" / name / "masksTs" / f"{case}.nii.gz")[0] > 0
        assert mask_geometry == geometry and mask.dtype == np.uint8
        expected, lesions = find_lesions(anomaly_map, brain, threshold, geometry)
        assert np.array_equal(mask, expected) and mask.sum() == (anomaly_map > threshold).sum()
        assert [int(r["voxels"]) for r in rows if r["case_id"] == case] == [lesion.voxels for lesion in lesions]
        sidecar = json.loads((out / f".{case}.json").read_text())
        assert sidecar["binary"]["threshold"] == threshold and sidecar["binary"]["voxel_fpr"] == 0.01
        p_value = volume_p_value(calibration.volume_scores, sidecar["volume_score"])
        row = next(s for s in scores if s["case_id"] == case)
        assert float(row["p_value"]) == pytest.approx(p_value) and row["flagged"] == str(int(p_value <= 0.5))
    # The maps carry the threshold: evaluate reports the operating point without being told it.
    assert evaluate_cli.main(["-pred", str(out), "-ref", str(root / "raw" / name / "labelsTs"),
                              "--report", str(tmp_path / "report")]) == 0
    point = json.loads((out / "summary.json").read_text())["operating_point"]
    page = (tmp_path / "report" / "index.html").read_text()
    assert "Operating point" in page and "Cyan: outline of the binary mask" in page
    assert ("Predicted lesions (lesions.csv)" in page) == bool(rows)
    assert point["threshold"] == threshold and "0.01" in point["threshold_source"]
    assert set(point["lesion_wise"]) >= {"sensitivity", "sensitivity_by_size", "false_positive_components_per_volume",
                                         "f1"}
    flagged = point["flagged"]
    assert flagged["volumes_with_lesions"] + flagged["lesion_free_volumes"] == 3
    assert 0 <= point["pooled"]["dice"] <= 1 and point["oracle"]["best_dice"] is not None
    # A prediction with other settings finds no matching calibration: refused, naming the difference.
    assert predict(root, name, tmp_path / "other", "-f", "0", "1", "--binary", "--median_filter", "0") == 2
    assert not (tmp_path / "other").exists()


def test_calibrate_on_a_folder_and_refusals(env, capsys):
    root, name, tmp_path = env
    healthy = root / "raw" / name / "imagesTr"
    assert calibrate("-f", "0", "-i", str(healthy), "--median_filter", "0") == 0
    calibrations = list((model_folder(root, name) / "calibrations").glob("*.json"))
    by_runs = [load_calibration(p) for p in calibrations if load_calibration(p).settings["runs"] == ["fold_0_seed_0"]]
    assert len(by_runs) == 1 and by_runs[0].num_volumes == 5 and "healthy scans in" in by_runs[0].source
    capsys.readouterr()
    # Fold 'all' only and no -i: nothing held out, refused in one line.
    assert train_cli.main(["1", "2d_small", "all", "--steps", "1"]) == 0
    capsys.readouterr()
    assert calibrate("-f", "all") == 2
    err = capsys.readouterr().err
    assert "fold 'all'" in err and "-i HEALTHY_FOLDER" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("flags, words", [
    (["--voxel_fpr", "1e-3"], "--binary was not given"),
    (["--min_lesion_ml", "0.5"], "--binary was not given"),
    (["--binary", "--voxel_fpr", "0"], "in (0, 1)"),
    (["--binary", "--voxel_fpr", "1"], "in (0, 1)"),
    (["--binary", "--volume_alpha", "1.5"], "in (0, 1)"),
    (["--binary", "--min_lesion_ml", "-1"], "in [0, inf]"),
    (["--binary", "-f", "all"], "no calibration"),
])
def test_binary_flags_are_checked_before_any_case_is_read(env, capsys, flags, words):
    root, name, tmp_path = env
    out = tmp_path / "refused"
    assert predict(root, name, out, *flags) == 2
    assert words in capsys.readouterr().err
    assert not out.exists()


def test_a_damaged_calibration_is_named_and_nothing_is_written(env, capsys):
    root, name, tmp_path = env
    assert calibrate("-f", "1") == 0
    path = next(p for p in (model_folder(root, name) / "calibrations").glob("*.json")
                if load_calibration(p).settings["runs"] == ["fold_1_seed_0"])
    text = path.read_text()
    try:
        path.write_text(text[: len(text) // 2])
        assert predict(root, name, tmp_path / "out", "-f", "1", "--binary") == 2
        err = capsys.readouterr().err
        assert "damaged" in err and str(path) in err and not (tmp_path / "out").exists()
    finally:
        path.write_text(text)


def test_uncertainty_map_and_sharded_evaluation(env):
    root, name, tmp_path = env
    plain, with_std = tmp_path / "plain", tmp_path / "std"
    assert predict(root, name, plain, "-f", "0", "1") == 0
    assert predict(root, name, with_std, "-f", "0", "1", "--save_uncertainty") == 0
    for case in ("test00", "test01", "test02"):
        anomaly_map = read(plain / f"{case}.nii.gz")[0]
        assert np.allclose(read(with_std / f"{case}.nii.gz")[0], anomaly_map, rtol=1e-6, atol=1e-7)
        spread = read(with_std / f"{case}_std.nii.gz")[0]
        brain = read(root / "raw" / name / "masksTs" / f"{case}.nii.gz")[0] > 0
        assert (spread[~brain] == 0).all() and (spread >= 0).all() and spread[brain].max() > 0
    # The parts of --num_parts in two folders evaluate to exactly the one-folder numbers.
    parts = [tmp_path / "part0", tmp_path / "part1"]
    for part_id, folder in enumerate(parts):
        assert predict(root, name, folder, "-f", "0", "1", "--num_parts", "2", "--part_id", str(part_id)) == 0
    labels = str(root / "raw" / name / "labelsTs")
    assert evaluate_cli.main(["-pred", str(plain), "-ref", labels, "--threshold", "0.05"]) == 0
    assert evaluate_cli.main(["-pred", *map(str, parts), "-ref", labels, "-o", str(tmp_path / "merged.json"),
                              "--threshold", "0.05"]) == 0
    whole = json.loads((plain / "summary.json").read_text())
    merged = json.loads((tmp_path / "merged.json").read_text())
    for key in ("pooled", "volume_level", "slice_level", "per_case", "operating_point", "mean_per_case"):
        assert merged[key] == whole[key], key
    assert evaluate_cli.main(["-pred", *map(str, parts), "-ref", labels]) == 2  # several folders need -o


def test_a_killed_calibration_leaves_no_file(env, monkeypatch):
    root, name, tmp_path = env
    from disyre_v2.inference.predictor import DisyrePredictor

    folder = model_folder(root, name) / "calibrations"
    before = sorted(folder.glob("*")) if folder.is_dir() else []
    calls = []

    def killed(self, *args, **kwargs):
        calls.append(1)
        raise KeyboardInterrupt("killed while scoring")

    monkeypatch.setattr(DisyrePredictor, "predict_case", killed)
    with pytest.raises(KeyboardInterrupt):
        calibrate_cli.main(["-d", "1", "-c", "2d_small", "--no_progress", "-f", "0", "1", "--median_filter", "5"])
    assert calls and (sorted(folder.glob("*")) if folder.is_dir() else []) == before
