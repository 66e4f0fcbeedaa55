import json

import pytest
import torch

from disyre_v2.training.run_training import train
from disyre_v2.training.trainer.base import DisyreTrainer
from disyre_v2.training.trainer.checkpoint import IncompatibleCheckpointError, load_checkpoint
from disyre_v2.training.trainer.lr_schedule import warmup_cosine_factor
from disyre_v2.training.trainer.registry import get_trainer_class
from disyre_v2.run import train as cli
from tests.trainer_fixtures import crash_then_resume, make_preprocessed_dataset, point_environment_at


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("trainer")
    with pytest.MonkeyPatch.context() as patch:
        for key, sub in (("DISYRE_raw", "raw"), ("DISYRE_preprocessed", "pre"), ("DISYRE_results", "res")):
            (root / sub).mkdir(exist_ok=True)
            patch.setenv(key, str(root / sub))
        name = make_preprocessed_dataset(root)
    return root, name


@pytest.fixture
def env(dataset, monkeypatch, tmp_path):
    root, name = dataset
    point_environment_at(monkeypatch, root, results=tmp_path / "results")
    return tmp_path / "results" / name


def weights(path):
    return load_checkpoint(path)["network"]


def test_warmup_then_cosine():
    assert warmup_cosine_factor(0, 4, 12) == pytest.approx(0.25)
    assert warmup_cosine_factor(3, 4, 12) == pytest.approx(1.0)
    assert warmup_cosine_factor(8, 4, 12) == pytest.approx(0.5)  # half-way through the decay
    assert warmup_cosine_factor(12, 4, 12) == pytest.approx(0.0)


def test_registry_names_variants():
    assert get_trainer_class("DisyreTrainerFPI").synthesis_mode == "fpi"
    assert get_trainer_class("DisyreTrainerUnconditional").conditional is False
    assert get_trainer_class("DaeTrainer").scores == ("residual",)
    assert get_trainer_class("FpiSegmentationTrainer").synthesis_mode == "fpi"
    assert {name: get_trainer_class(name).scores[0] for name in
            ("RVaeTrainer", "PiiTrainer", "CutPasteTrainer", "Mood22Trainer")} == {
        "RVaeTrainer": "restoration", "PiiTrainer": "segmentation", "CutPasteTrainer": "patch_density",
        "Mood22Trainer": "segmentation"}
    with pytest.raises(ValueError, match="Unknown trainer 'Nope'; available: CutPasteTrainer, DaeTrainer, "):
        get_trainer_class("Nope")


def test_training_writes_the_model_folder(env):
    run = train(1, "2d_small", 0, trainer="DisyreTrainer_debug", seed=0)
    assert run == env / "DisyreTrainer_debug__DisyrePlans__2d_small" / "fold_0_seed_0"
    for name in ("checkpoint_latest.pth", "checkpoint_final.pth", "progress.png", "training_log.txt", "debug.json",
                 "schedule.json"):
        assert (run / name).is_file(), name
    for name in ("plans.json", "dataset.json", "dataset_fingerprint.json"):
        assert (run.parent / name).is_file(), name
    state = load_checkpoint(run / "checkpoint_final.pth")
    assert state["step"] == 6 and state["trainer_name"] == "DisyreTrainer_debug"
    assert state["trainer_arguments"]["seed"] == 0 and state["plans_identifier"] == "DisyrePlans"
    assert len(state["progress"]["train_loss"]) == 6 and len(state["progress"]["val_loss"]) == 2
    assert "Global batch 4" in (run / "training_log.txt").read_text()
    info = json.loads((run / "debug.json").read_text())
    assert info["steps_trained"] == 6 and info["session_steps"] == 6 and info["session_wall_s"] > 0
    # Checkpoints hold plain data only: the safe loader reads them.
    torch.load(run / "checkpoint_final.pth", weights_only=True)
    with pytest.raises(FileExistsError, match="already holds checkpoints. Continue with --c"):
        train(1, "2d_small", 0, trainer="DisyreTrainer_debug", seed=0)


def test_resume_reaches_the_same_weights_as_an_uninterrupted_run(env, monkeypatch):
    straight = train(1, "2d_small", 1, trainer="DisyreTrainer_debug", seed=3, deterministic=True)
    reference = weights(straight / "checkpoint_final.pth")
    # Same seed again, crashing right after the checkpoint at step 3, then continued with --c.
    monkeypatch.setenv("DISYRE_results", str(env.parent / "second"))
    resumed = crash_then_resume(monkeypatch, DisyreTrainer, 3, 1, "2d_small", 1, trainer="DisyreTrainer_debug", seed=3,
                                deterministic=True)
    assert resumed != straight and load_checkpoint(resumed / "checkpoint_final.pth")["step"] == 6
    info = json.loads((resumed / "debug.json").read_text())
    assert (info["steps_trained"], info["session_steps"]) == (6, 3)  # the continued process trained steps 4–6
    final = weights(resumed / "checkpoint_final.pth")
    for key in reference:
        torch.testing.assert_close(final[key], reference[key], rtol=0, atol=0)


def test_other_seed_gives_other_weights(env):
    a = weights(train(1, "2d_small", 2, trainer="DisyreTrainer_debug", seed=0, deterministic=True) / "checkpoint_final.pth")
    b = weights(train(1, "2d_small", 2, trainer="DisyreTrainer_debug", seed=1, deterministic=True) / "checkpoint_final.pth")
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_incompatible_checkpoint_is_refused(env, tmp_path):
    run = train(1, "2d_small", 3, trainer="DisyreTrainer_debug", seed=0)
    target = env / "DisyreTrainerUnconditional_debug__DisyrePlans__2d_small" / "fold_3_seed_0"
    target.mkdir(parents=True)
    (target / "checkpoint_latest.pth").write_bytes((run / "checkpoint_latest.pth").read_bytes())
    with pytest.raises(IncompatibleCheckpointError, match="trainer_name: checkpoint 'DisyreTrainer_debug', expected "
                                                           "'DisyreTrainerUnconditional_debug'"):
        train(1, "2d_small", 3, trainer="DisyreTrainerUnconditional_debug", seed=0, resume=True)
    (target / "checkpoint_latest.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(IncompatibleCheckpointError, match="cannot be read as a disyre_v2 checkpoint"):
        train(1, "2d_small", 3, trainer="DisyreTrainerUnconditional_debug", seed=0, resume=True)


def test_unconditional_variant_has_no_time_input(env):
    run = train(1, "2d_small", 4, trainer="DisyreTrainerUnconditional_debug", seed=0)
    state = load_checkpoint(run / "checkpoint_final.pth")
    assert state["conditional"] is False
    assert not any("time" in key for key in state["network"])


def test_cli_errors(env, capsys):
    assert cli.main(["1", "2d_small", "7", "-tr", "DisyreTrainer_debug"]) == 2
    assert "FOLD must be 0..4 or 'all', got '7'" in capsys.readouterr().err
    assert cli.main(["1", "3d", "0"]) == 2
    err = capsys.readouterr().err
    assert "Configuration '3d' is not in the plans" in err and "2d_small" in err
    assert cli.main(["9", "2d_small", "0"]) == 2
    assert "No dataset with id 009" in capsys.readouterr().err


def test_help_documents_every_flag(capsys):
    with pytest.raises(SystemExit):
        cli.main(["-h"])
    text = capsys.readouterr().out
    for flag in ("--seed", "--trainer", "--steps", "--c", "--device", "--val_every", "--deterministic", "--compile"):
        assert flag in text


def test_loss_over_the_patch_or_over_the_brain_pixels_only():
    prediction = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]], [[[0.0, 0.0], [0.0, 2.0]]]])  # (2, 1, 2, 2)
    batch = {"target": torch.zeros(2, 1, 2, 2),
             "mask": torch.tensor([[[[1, 0], [0, 0]]], [[[0, 0], [0, 1]]]], dtype=torch.uint8)}
    patch = DisyreTrainer.loss(type("T", (), {"loss_region": "patch"})(), prediction, batch)
    assert patch.item() == pytest.approx((1 + 4 + 9 + 16 + 4) / 8)
    brain = DisyreTrainer.loss(type("T", (), {"loss_region": "brain"})(), prediction, batch)
    assert brain.item() == pytest.approx((1 + 4) / 2)  # the two brain pixels alone


def test_an_unknown_loss_region_is_refused(dataset, tmp_path):
    root, name = dataset
    plans = json.loads((root / "pre" / name / "plans.json").read_text())
    plans["configurations"]["2d_small"]["training"]["loss_region"] = "everywhere"
    with pytest.raises(ValueError, match="loss_region"):
        DisyreTrainer(plans, "2d_small", "all", root / "pre" / name, tmp_path / "run")


def test_losses_read_every_few_steps_are_logged_for_every_step(env, monkeypatch):
    # The loss stays on the device and is read every log_every steps (and before each validation):
    # every step must still appear once, in order, with the learning rate it was trained with.
    monkeypatch.setattr(DisyreTrainer, "log_every", 4)
    run = train(1, "2d_small", 0, trainer="DisyreTrainer_debug", seed=0, deterministic=True, num_steps=10)
    progress = load_checkpoint(run / "checkpoint_final.pth")["progress"]
    assert progress["train_step"] == [float(step) for step in range(1, 11)]
    assert all(loss > 0 and loss == loss for loss in progress["train_loss"])
    plans = json.loads((run.parent / "plans.json").read_text())["configurations"]["2d_small"]["training"]
    lr, warmup = plans["lr"], plans["warmup_steps"]
    expected = [lr * warmup_cosine_factor(step, warmup, 10) for step in range(1, 11)]
    assert progress["learning_rate"] == pytest.approx(expected, rel=1e-6)
    assert progress["val_step"] == [3.0, 6.0, 9.0, 10.0]
