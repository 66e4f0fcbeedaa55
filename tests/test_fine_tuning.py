"""Fine-tuning (disyre_v2_train --pretrained_weights): a new run that starts from another model's weights."""
import hashlib
import json

import pytest
import torch

from disyre_v2.inference.model_loading import load_models
from disyre_v2.run import train as cli
from disyre_v2.training.run_training import train
from disyre_v2.training.trainer.base import DisyreTrainer
from disyre_v2.training.trainer.checkpoint import IncompatibleCheckpointError, load_checkpoint, save_checkpoint
from tests.trainer_fixtures import make_environment, make_preprocessed_dataset, point_environment_at


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("fine_tuning")
    with pytest.MonkeyPatch.context() as patch:
        make_environment(patch, root)
        name = make_preprocessed_dataset(root)
    return root, name


@pytest.fixture
def env(dataset, monkeypatch, tmp_path):
    root, name = dataset
    point_environment_at(monkeypatch, root, results=tmp_path / "results")
    return tmp_path / "results" / name


@pytest.fixture
def source(dataset, env, monkeypatch):
    """A trained model with EMA weights (ema_decay set in its plans for this run only), so the test can
    tell the EMA weights from the network's."""
    root, name = dataset
    plans_path = root / "pre" / name / "plans.json"
    original = plans_path.read_text()
    plans = json.loads(original)
    plans["configurations"]["2d_small"]["training"]["ema_decay"] = 0.5
    plans_path.write_text(json.dumps(plans))
    try:
        run = train(1, "2d_small", 0, trainer="DisyreTrainer_debug", seed=0)
    finally:
        plans_path.write_text(original)
    return run / "checkpoint_final.pth"


def record_start(monkeypatch) -> dict:
    """Patches the trainer's step to record the network, optimiser and schedule before step 1."""
    seen = {}
    original = DisyreTrainer.train_step

    def train_step(self, batch):
        if "network" not in seen:
            seen.update(step=self.step, network={k: v.detach().clone() for k, v in self.network.state_dict().items()},
                        optimizer_state=dict(self.optimizer.state), lr_steps=self.lr_scheduler.last_epoch,
                        ema={k: v.detach().clone() for k, v in self.ema.module.state_dict().items()}
                        if self.ema is not None else None)
        return original(self, batch)

    monkeypatch.setattr(DisyreTrainer, "train_step", train_step)
    return seen


def test_fine_tuning_starts_from_the_checkpoints_ema_weights(env, source, monkeypatch):
    state = load_checkpoint(source)
    assert state["ema"], "the source model should have EMA weights"
    predicted_with = load_models(source.parents[1], "2d_small", folds=["0"], seeds=[0])[0].network.state_dict()
    network_only = state["network"]
    assert any(not torch.equal(predicted_with[k], network_only[k]) for k in network_only), "EMA = network: test is blind"

    seen = record_start(monkeypatch)
    run = train(1, "2d_small", "all", trainer="DisyreTrainer_debug", seed=1, pretrained_weights=source)
    # Before step 1 the network holds exactly the weights prediction uses (the EMA ones), with a fresh
    # optimiser and learning-rate schedule at step 0.
    assert seen["step"] == 0 and seen["optimizer_state"] == {} and seen["lr_steps"] == 0
    assert seen["network"].keys() == predicted_with.keys()
    for key, value in predicted_with.items():
        assert torch.equal(seen["network"][key], value), key
    assert seen["ema"] is None  # this run's plans have no EMA
    final = load_checkpoint(run / "checkpoint_final.pth")
    assert final["step"] == 6
    assert any(not torch.equal(final["network"][k], predicted_with[k]) for k in predicted_with)  # it trained

    info = json.loads((run / "debug.json").read_text())
    record = info["pretrained_weights"]
    assert record["path"] == str(source.resolve())
    assert record["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert record["weights"] == "ema" and record["step"] == 6 and record["trainer"] == "DisyreTrainer_debug"
    assert final["pretrained_weights"] == record
    assert "Fine-tuning from" in (run / "training_log.txt").read_text()


def test_without_ema_the_network_weights_are_used(env, monkeypatch, tmp_path):
    plain = train(1, "2d_small", 0, trainer="DisyreTrainer_debug", seed=2) / "checkpoint_final.pth"
    seen = record_start(monkeypatch)
    run = train(1, "2d_small", 0, trainer="DisyreTrainer_debug", seed=3, pretrained_weights=plain)
    for key, value in load_checkpoint(plain)["network"].items():
        assert torch.equal(seen["network"][key], value), key
    assert json.loads((run / "debug.json").read_text())["pretrained_weights"]["weights"] == "network"


def test_another_network_shape_is_refused_naming_the_difference(env, source, tmp_path):
    state = load_checkpoint(source)
    plans = json.loads(state["network_plans"])
    plans["kwargs"]["widths"] = [8, 32]
    state["network_plans"] = json.dumps(plans, sort_keys=True)
    state.pop("format_version")
    other = save_checkpoint(state, tmp_path / "other_widths.pth")
    with pytest.raises(IncompatibleCheckpointError, match=r"kwargs\.widths: checkpoint \[8, 32\], this run \[8, 16\]"):
        train(1, "2d_small", 0, trainer="DisyreTrainer_debug", seed=4, pretrained_weights=other)
    assert not (env / "DisyreTrainer_debug__DisyrePlans__2d_small" / "fold_0_seed_4").exists()
    # The level input counts too: an unconditional trainer cannot start from a conditional model.
    with pytest.raises(IncompatibleCheckpointError, match=r"conditional \(level input t\): checkpoint True, this run False"):
        train(1, "2d_small", 0, trainer="DisyreTrainerUnconditional_debug", seed=4, pretrained_weights=source)
    assert not (env / "DisyreTrainerUnconditional_debug__DisyrePlans__2d_small" / "fold_0_seed_4").exists()


def test_cli_refuses_pretrained_weights_with_continue_and_a_missing_file(env, source, tmp_path, capsys):
    assert cli.main(["1", "2d_small", "0", "-tr", "DisyreTrainer_debug", "--c", "--pretrained_weights", str(source)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "cannot be combined with --c" in error
    missing = tmp_path / "nope.pth"
    assert cli.main(["1", "2d_small", "0", "-tr", "DisyreTrainer_debug", "--pretrained_weights", str(missing)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "does not exist" in error and str(missing) in error


def test_a_second_acquisition_changes_the_scanner_not_the_subject(tmp_path, monkeypatch):
    """--acquisition scanner_b (the second site of benchmarks/fine_tuning.py): same subjects and masks
    for the same seed, noisier images; default keeps the benchmark's random draws."""
    import numpy as np
    from scipy import ndimage

    from disyre_v2.dataset_conversion.synthetic.acquisition import ACQUISITIONS, sample_acquisition
    from disyre_v2.dataset_conversion.synthetic.generator import CaseSpec, generate_case
    from disyre_v2.run import make_synthetic_dataset as make_cli

    extent = np.array([180.0, 216.0, 180.0])
    plain = sample_acquisition(np.random.default_rng(3), extent)
    same = sample_acquisition(np.random.default_rng(3), extent, ACQUISITIONS["default"])
    assert same.noise_fraction == plain.noise_fraction and same.blur_sigma_voxels == plain.blur_sigma_voxels
    other = sample_acquisition(np.random.default_rng(3), extent, ACQUISITIONS["scanner_b"])
    low, high = ACQUISITIONS["scanner_b"].noise_fraction_of_wm
    assert all(low <= v <= high for v in other.noise_fraction)
    assert np.array_equal(other.bias.coefficients, plain.bias.coefficients)  # the same draws, other ranges

    def relative_noise(case):
        inside = ndimage.binary_erosion(case.mask > 0, iterations=3)
        image = case.images[0]
        return float(np.std((image - ndimage.gaussian_filter(image, 1.0))[inside]) / np.median(image[inside]))

    site_a = generate_case(CaseSpec("a", "Tr", 0, "healthy", seed=5))
    site_b = generate_case(CaseSpec("a", "Tr", 0, "healthy", seed=5, acquisition="scanner_b"))
    assert np.array_equal(site_a.mask, site_b.mask) and not np.array_equal(site_a.images, site_b.images)
    assert relative_noise(site_b) > 1.5 * relative_noise(site_a)

    monkeypatch.setenv("DISYRE_raw", str(tmp_path))
    assert make_cli.main(["-d", "7", "--n_train", "1", "--n_test", "0", "--no_montage", "--acquisition", "scanner_b"]) == 0
    sidecar = json.loads(next(tmp_path.glob("Dataset007_*/synthetic_cases.json")).read_text())
    assert sidecar["acquisition"] == "scanner_b"
    with pytest.raises(SystemExit):
        make_cli.main(["-d", "8", "--n_train", "1", "--acquisition", "nope"])


def test_torchrun_fine_tunes_on_two_gloo_ranks(tmp_path):
    """Both ranks start from the given weights and end identical; rank 0 records the source checkpoint."""
    from tests.test_distributed_training import gloo_environment, torchrun
    env = gloo_environment(tmp_path, tmp_path / "res")
    with pytest.MonkeyPatch.context() as patch:
        make_environment(patch, tmp_path)
        name = make_preprocessed_dataset(tmp_path)
        source = train(1, "2d_small", 0, trainer="DisyreTrainer_debug", seed=0, num_steps=2) / "checkpoint_final.pth"
    tuned = torchrun(["1", "2d_small", "1", "-tr", "DisyreTrainer_debug", "--steps", "2", "--val_every", "2",
                      "--pretrained_weights", str(source)], env)
    assert tuned.returncode == 0, tuned.stderr[-3000:]
    run = tmp_path / "res" / name / "DisyreTrainer_debug__DisyrePlans__2d_small" / "fold_1_seed_0"
    log = (run / "training_log.txt").read_text()
    assert "Fine-tuning from" in log and "Parameters identical on 2 ranks" in log
    record = json.loads((run / "debug.json").read_text())["pretrained_weights"]
    assert record["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest() and record["step"] == 2
    assert load_checkpoint(run / "checkpoint_final.pth")["step"] == 2
