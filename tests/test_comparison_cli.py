"""Comparison methods end to end through the CLI: train a few steps, predict with the method's own
score, evaluate; resume; the model-free baselines; and the errors a user meets."""
import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from disyre_v2.run import evaluate as evaluate_cli
from disyre_v2.run import predict as predict_cli
from disyre_v2.run import train as train_cli
from disyre_v2.training.run_training import train
from disyre_v2.training.trainer.checkpoint import load_checkpoint
from disyre_v2.training.trainer.registry import get_trainer_class
from tests.trainer_fixtures import crash_then_resume, make_environment, make_preprocessed_dataset, point_environment_at

TRAINERS = {"DaeTrainer": "residual", "VaeTrainer": "residual", "FpiSegmentationTrainer": "segmentation",
            "PiiTrainer": "segmentation", "Mood22Trainer": "segmentation"}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("comparison")
    with pytest.MonkeyPatch.context() as patch:
        make_environment(patch, root)
        name = make_preprocessed_dataset(root, channels=("T1", "T2"))
    return root, name


@pytest.fixture
def env(dataset, monkeypatch, tmp_path):
    root, name = dataset
    point_environment_at(monkeypatch, root, results=tmp_path / "results")
    return root, name, tmp_path


def read(path):
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def predict_and_evaluate(root, name, out, *flags):
    images = root / "raw" / name / "imagesTs"
    assert predict_cli.main(["-i", str(images), "-o", str(out), "-d", "1", "-c", "2d_small", *flags]) == 0
    assert evaluate_cli.main(["-pred", str(out), "-ref", str(root / "raw" / name / "labelsTs")]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert 0 < summary["pooled"]["average_precision"] <= 1
    for case in ("test00", "test01"):
        anomaly_map = read(out / f"{case}.nii.gz")
        brain = read(root / "raw" / name / "masksTs" / f"{case}.nii.gz") > 0
        assert np.isfinite(anomaly_map).all() and (anomaly_map[~brain] == 0).all() and anomaly_map[brain].max() > 0
    return summary, json.loads((out / ".test00.json").read_text())


@pytest.mark.parametrize("trainer", list(TRAINERS))
def test_train_predict_evaluate_each_method(env, trainer):
    root, name, tmp_path = env
    assert train_cli.main(["1", "2d_small", "all", "-tr", trainer, "--steps", "3"]) == 0
    run = tmp_path / "results" / name / f"{trainer}__DisyrePlans__2d_small" / "fold_all_seed_0"
    state = torch.load(run / "checkpoint_final.pth", weights_only=True)  # plain data only
    assert state["trainer_name"] == trainer and state["scores"] == [TRAINERS[trainer]] and state["step"] == 3
    # No --score: the trainer's own.
    summary, sidecar = predict_and_evaluate(root, name, tmp_path / "maps", "-tr", trainer)
    assert sidecar["score"] == TRAINERS[trainer] and sidecar["levels"] == []
    assert "volume_level" in summary


def test_fpi_segmentation_maps_are_probabilities(env):
    root, name, tmp_path = env
    train(1, "2d_small", "all", trainer="FpiSegmentationTrainer", num_steps=2)
    predict_and_evaluate(root, name, tmp_path / "maps", "-tr", "FpiSegmentationTrainer", "--score", "segmentation")
    anomaly_map = read(tmp_path / "maps" / "test00.nii.gz")
    assert anomaly_map.max() < 1.0  # σ(logit), median-filtered and resampled: inside (0, 1)


@pytest.mark.parametrize("trainer", list(TRAINERS))
def test_resume_of_each_method_reaches_the_uninterrupted_weights(env, monkeypatch, trainer):
    root, name, tmp_path = env
    straight = train(1, "2d_small", 0, trainer=trainer, seed=2, num_steps=4, val_every=2, deterministic=True)
    reference = load_checkpoint(straight / "checkpoint_final.pth")["network"]
    monkeypatch.setenv("DISYRE_results", str(tmp_path / "second"))
    resumed = crash_then_resume(monkeypatch, get_trainer_class(trainer), 2, 1, "2d_small", 0, trainer=trainer,
                                seed=2, num_steps=4, val_every=2, deterministic=True)
    final = load_checkpoint(resumed / "checkpoint_final.pth")["network"]
    assert final.keys() == reference.keys()
    for key in reference:
        torch.testing.assert_close(final[key], reference[key], rtol=0, atol=0)


def test_model_free_intensity_and_joint_histogram(env):
    root, name, tmp_path = env
    summary, sidecar = predict_and_evaluate(root, name, tmp_path / "t2", "--score", "intensity", "--channel", "T2")
    assert sidecar["score"] == "intensity" and sidecar["channel"] == 1 and sidecar["direction"] == "bright"
    predict_and_evaluate(root, name, tmp_path / "t1", "--score", "intensity", "--channel", "0", "--direction", "dark")
    summary, sidecar = predict_and_evaluate(root, name, tmp_path / "joint", "--score", "joint_histogram")
    assert sidecar["score"] == "joint_histogram" and sidecar["bins_per_channel"] == 64
    cache = tmp_path / "results" / name / "ModelFree__DisyrePlans__2d_small" / "joint_histogram.npz"
    assert cache.is_file()
    with np.load(cache) as stored:
        assert stored["counts"].shape == (64, 64) and stored["counts"].sum() > 0
    # The stored histogram is reused: the second run gives the same maps.
    first = read(tmp_path / "joint" / "test00.nii.gz")
    predict_and_evaluate(root, name, tmp_path / "joint2", "--score", "joint_histogram")
    np.testing.assert_array_equal(read(tmp_path / "joint2" / "test00.nii.gz"), first)


def test_user_errors_name_the_fix(env, capsys):
    root, name, tmp_path = env
    images = str(root / "raw" / name / "imagesTs")
    common = ["-i", images, "-d", "1", "-c", "2d_small"]
    assert predict_cli.main([*common, "-o", str(tmp_path / "a"), "--score", "intensity"]) == 2
    assert "needs --channel: the dataset has 2 channels (0: T1, 1: T2)" in capsys.readouterr().err
    assert predict_cli.main([*common, "-o", str(tmp_path / "a"), "--score", "intensity", "--channel", "FLAIR"]) == 2
    assert "--channel FLAIR is not a channel" in capsys.readouterr().err
    assert predict_cli.main([*common, "-o", str(tmp_path / "a"), "--score", "joint_histogram",
                             "--save_restorations"]) == 2
    assert "restores nothing" in capsys.readouterr().err
    assert predict_cli.main([*common, "-o", str(tmp_path / "a"), "--channel", "T1"]) == 2
    assert "--channel is for --score intensity" in capsys.readouterr().err
    train(1, "2d_small", "all", trainer="DaeTrainer", num_steps=1)
    train(1, "2d_small", "all", trainer="FpiSegmentationTrainer", num_steps=1)
    # The trainer's own score (no --score given) restores nothing either.
    assert predict_cli.main([*common, "-o", str(tmp_path / "a"), "-tr", "FpiSegmentationTrainer",
                             "--save_restorations"]) == 2
    assert "--score segmentation restores nothing" in capsys.readouterr().err
    assert predict_cli.main([*common, "-o", str(tmp_path / "a"), "-tr", "DaeTrainer", "--score", "ensemble"]) == 2
    assert "--score ensemble does not fit the model" in capsys.readouterr().err
    # Flags the model's score would ignore: refused in one line once the trainer's score is known.
    for trainer, flags, words in [
        ("DaeTrainer", ["--levels", "0", "25"], "--levels is for --score ensemble or singlestep (models with the "
                                                "level input), not --score residual (the trainer's own)"),
        ("FpiSegmentationTrainer", ["--levels", "50"], "not --score segmentation (the trainer's own)"),
        ("DaeTrainer", ["--multistep_step", "5"], "--multistep_step is for --score multistep, not --score residual"),
        ("DaeTrainer", ["--direction", "dark"], "--direction is for --score intensity"),
    ]:
        assert predict_cli.main([*common, "-o", str(tmp_path / "a"), "-tr", trainer, *flags]) == 2
        err = capsys.readouterr().err
        assert words in err and len([line for line in err.splitlines() if "error:" in line]) == 1
    assert not (tmp_path / "a").exists()  # nothing written by a refused call
    with pytest.raises(SystemExit):
        predict_cli.main([*common, "-o", str(tmp_path / "a"), "--score", "histogram"])
    assert "invalid choice" in capsys.readouterr().err


def test_model_free_scores_need_the_plans(tmp_path, monkeypatch, capsys):
    point_environment_at(monkeypatch, tmp_path)
    raw = tmp_path / "raw" / "Dataset005_Unplanned"
    (raw / "imagesTs").mkdir(parents=True)
    (raw / "dataset.json").write_text(json.dumps({"channel_names": {"0": "T1"}, "file_ending": ".nii.gz"}))
    code = predict_cli.main(["-i", str(raw / "imagesTs"), "-o", str(tmp_path / "out"), "-d", "5", "-c", "2d_small",
                             "--score", "intensity"])
    assert code == 2 and "run disyre_v2_plan_and_preprocess" in capsys.readouterr().err


@pytest.mark.parametrize("flags, words", [
    (["--score", "intensity", "--channel", "T2", "--levels", "0"], "--levels is for the scores of trained models; "
                                                                    "--score intensity uses no model"),
    (["--score", "joint_histogram", "--tile_step", "0.5"], "--tile_step is for the scores of trained models"),
    (["--score", "joint_histogram", "--multistep_step", "5"], "--multistep_step is for the scores of trained models"),
    (["--score", "intensity", "--channel", "T1", "--seeds", "0"], "--seeds is for the scores of trained models"),
    (["--score", "intensity", "--channel", "T1", "--batch_windows", "8"], "--batch_windows is for the scores of"),
    (["--score", "intensity", "--channel", "T1", "-tr", "DaeTrainer"], "-tr is for the scores of trained models"),
    (["--score", "joint_histogram", "--direction", "dark"], "--direction is for --score intensity, not --score "
                                                            "joint_histogram"),
    (["--direction", "bright"], "--direction is for --score intensity, not the trainer's own score"),
    (["--score", "multistep", "--levels", "0", "25"], "--levels is for --score ensemble or singlestep"),
    (["--score", "ensemble", "--multistep_step", "10"], "--multistep_step is for --score multistep, not --score "
                                                         "ensemble"),
])
def test_flags_that_the_score_would_ignore_are_refused_before_anything_is_read(env, capsys, flags, words):
    root, name, tmp_path = env
    out = tmp_path / "maps"
    assert predict_cli.main(["-i", str(root / "raw" / name / "imagesTs"), "-o", str(out), "-d", "1", "-c",
                             "2d_small", *flags]) == 2
    err = capsys.readouterr().err
    assert words in err and len([line for line in err.splitlines() if "error:" in line]) == 1
    assert not out.exists()
    assert not (tmp_path / "results").exists()  # not even the joint histogram was fitted


def test_the_median_filter_flag_sets_the_size_of_model_free_maps_and_is_recorded(env, capsys):
    root, name, tmp_path = env
    intensity = ["--score", "intensity", "--channel", "T2"]
    _, plans_default = predict_and_evaluate(root, name, tmp_path / "plans", *intensity)
    _, unfiltered = predict_and_evaluate(root, name, tmp_path / "none", *intensity, "--median_filter", "0")
    _, five = predict_and_evaluate(root, name, tmp_path / "five", *intensity, "--median_filter", "5")
    assert (plans_default["median_filter_size"], unfiltered["median_filter_size"], five["median_filter_size"]) == (3, 0, 5)
    maps = {key: read(tmp_path / key / "test00.nii.gz") for key in ("plans", "none", "five")}
    assert not np.array_equal(maps["plans"], maps["none"]) and not np.array_equal(maps["plans"], maps["five"])
    # An even size is refused in one line, before anything is read or written.
    images = str(root / "raw" / name / "imagesTs")
    with pytest.raises(SystemExit) as exit_:
        predict_cli.main(["-i", images, "-o", str(tmp_path / "even"), "-d", "1", "-c", "2d_small", *intensity,
                          "--median_filter", "4"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--median_filter: must be 0 (none) or an odd integer" in err and not (tmp_path / "even").exists()
