"""MOOD22 (Naval Marimont and Tarroni, 2023): the anomaly generator on tiny arrays with known answers,
its seeding, the loss, and two gloo ranks under torchrun. Train → predict → evaluate through the CLI and exact
resume: tests/test_comparison_cli.py, whose TRAINERS include Mood22Trainer."""
import math
import multiprocessing
import pickle
from dataclasses import replace

import numpy as np
import pytest
import torch

from disyre_v2.training.anomalies.shapes import draw_disc
from disyre_v2.training.baselines.mood22_anomalies import (SHAPE_KINDS, Mood22AnomalyTransform, Mood22Parameters,
                                                           Mood22Synthesizer, augment_foreign_patch, interpolate,
                                                           place_disc, place_rectangle, smooth_mask, smoothing_kernel)
from disyre_v2.training.trainer.checkpoint import load_checkpoint
from disyre_v2.training.trainer.mood22 import Mood22Trainer
from disyre_v2.training.trainer.registry import get_trainer_class
from tests.test_comparison_cli import dataset  # noqa: F401 (fixture)
from tests.test_distributed_training import gloo_environment, torchrun

# No foreign-patch augmentation: the foreign patch is the other sample's crop, unchanged.
PLAIN = replace(Mood22Parameters(), fp_shift_probability=0.0, fp_noise_probability=0.0, fp_rotation_probability=0.0)


def two_constant_samples(size: int = 32) -> np.ndarray:
    """Sample 0: channels 0.5 and 0.2; sample 1 (sample 0's foreign patch): 0.9 and 0.6."""
    data = np.empty((2, 2, size, size), np.float32)
    data[0, 0], data[0, 1], data[1, 0], data[1, 1] = 0.5, 0.2, 0.9, 0.6
    return data


# -- shapes and the smoothing kernel ------------------------------------------------------------------
def test_rectangle_and_disc_are_placed_where_asked():
    expected = np.zeros((6, 6), np.float32)
    expected[1:3, 2:5] = 1
    np.testing.assert_array_equal(place_rectangle(6, 2, 3, 1, 2), expected)
    disc = place_disc(9, 5, 0, 3)
    rows, cols = np.nonzero(disc)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (0, 4, 3, 7)
    np.testing.assert_array_equal(disc[:5, 3:8], draw_disc(9, 5)[2:7, 2:7])  # our disc, moved
    with pytest.raises(ValueError, match="leaves the 6-px canvas"):
        place_rectangle(6, 2, 3, 5, 0)


def test_the_smoothing_kernel_is_the_entrys():
    w = math.exp(-0.25)  # exp(−((±1)/(2·1))²)
    np.testing.assert_allclose(smoothing_kernel(3), [w / (1 + 2 * w), 1 / (1 + 2 * w), w / (1 + 2 * w)], rtol=1e-12)
    impulse = np.zeros((7, 7), np.float32)
    impulse[3, 3] = 0.8
    k5 = smoothing_kernel(5)
    np.testing.assert_allclose(smooth_mask(impulse, 5), np.pad(0.8 * np.outer(k5, k5), 1), rtol=1e-6, atol=1e-8)
    np.testing.assert_array_equal(smooth_mask(impulse, 1), impulse)
    corner = np.zeros((7, 7), np.float32)
    corner[0, 0] = 1.0  # zero padding beyond the patch: mass is lost at the edge
    assert smooth_mask(corner, 3).sum() == pytest.approx((1 - smoothing_kernel(3)[0]) ** 2, rel=1e-6)


def test_interpolation_known_values():
    x = np.full((2, 2, 2), 0.5, np.float32)
    fp = np.full((2, 2, 2), 0.9, np.float32)
    weight = np.array([[0.0, 0.25], [0.5, 1.0]], np.float32)
    np.testing.assert_allclose(interpolate(x, fp, weight)[0], [[0.5, 0.6], [0.7, 0.9]], rtol=1e-6)


@pytest.mark.parametrize("kind", SHAPE_KINDS)
def test_each_shape_changes_the_image_only_inside_its_mask_by_the_intensity_model(kind):
    """Constant images, α = 0.6, no smoothing: inside the shape x' = 0.4·x + 0.6·x_fp and the label is
    0.6; outside, x' = x and the label 0."""
    weights = tuple(float(k == kind) for k in SHAPE_KINDS)
    params = replace(PLAIN, anomaly_probability=1.0, alpha_range=(0.6, 0.6), smoothing_kernels=(1,),
                     shape_weights=weights)
    data = two_constant_samples()
    corrupted, label = Mood22Synthesizer(params, seed=3)(data)
    inside = label[0, 0] > 0
    assert inside.sum() >= 4 and set(np.unique(label[0, 0])) == {0.0, np.float32(0.6)}
    np.testing.assert_allclose(corrupted[0, 0][inside], 0.4 * 0.5 + 0.6 * 0.9, rtol=1e-6)
    np.testing.assert_allclose(corrupted[0, 1][inside], 0.4 * 0.2 + 0.6 * 0.6, rtol=1e-6)
    np.testing.assert_array_equal(corrupted[0][:, ~inside], data[0][:, ~inside])
    canvas, min_size = params.sizes(32, 32)
    assert (canvas, min_size) == (26, 2)  # 0.8 and 1/16 of the side (the entry: 128 and 10 of 160)
    rows, cols = np.nonzero(inside)
    assert np.ptp(rows) < canvas and np.ptp(cols) < canvas


def test_smoothed_label_is_the_smoothed_alpha_mask_and_is_the_interpolation_weight():
    """The same seed draws the same shape whatever the kernel: the k = 5 label is the k = 1 label
    convolved with the entry's kernel, and x' = (1 − L)·x + L·x_fp with that soft L."""
    base = replace(PLAIN, anomaly_probability=1.0, alpha_range=(0.7, 0.7), canvas_fraction=1.0)
    data = two_constant_samples()
    _, sharp = Mood22Synthesizer(replace(base, smoothing_kernels=(1,)), seed=5)(data)
    corrupted, soft = Mood22Synthesizer(replace(base, smoothing_kernels=(5,)), seed=5)(data)
    np.testing.assert_allclose(soft[0, 0], smooth_mask(sharp[0, 0], 5), rtol=1e-6, atol=1e-7)
    assert 0 < soft[0, 0].max() <= 0.7 and ((soft[0, 0] > 0) & (soft[0, 0] < 0.7)).any()  # soft edges
    np.testing.assert_allclose(corrupted[0, 0], 0.5 + soft[0, 0] * (0.9 - 0.5), rtol=1e-6)
    np.testing.assert_allclose(corrupted[0, 1], 0.2 + soft[0, 0] * (0.6 - 0.2), rtol=1e-6)


def test_anomaly_probability_and_clean_samples():
    data = np.random.default_rng(0).random((40, 1, 32, 32)).astype(np.float32)
    corrupted, label = Mood22Synthesizer(replace(PLAIN, anomaly_probability=0.0), seed=1)(data)
    np.testing.assert_array_equal(corrupted, data)
    assert not label.any()
    corrupted, label = Mood22Synthesizer(seed=1)(data)  # p = 0.9
    changed = label.reshape(40, -1).max(axis=1) > 0
    assert 28 <= changed.sum() <= 40
    np.testing.assert_array_equal(corrupted[~changed], data[~changed])
    assert label.max() <= 1.0 and label.min() >= 0.0 and 0.0 <= corrupted.min() and corrupted.max() <= 1.0


def test_foreign_patch_augmentation():
    patch = np.full((2, 8, 8), 0.5, np.float32)
    np.testing.assert_array_equal(augment_foreign_patch(patch, np.random.default_rng(0), PLAIN), patch)
    shift_only = replace(PLAIN, fp_shift_probability=1.0)
    replay = np.random.default_rng(4)
    replay.random()
    offset = replay.uniform(-0.2, 0.2)
    np.testing.assert_allclose(augment_foreign_patch(patch, np.random.default_rng(4), shift_only),
                               np.full_like(patch, 0.5 + offset), rtol=1e-6)
    noise_only = replace(PLAIN, fp_noise_probability=1.0)
    noisy = augment_foreign_patch(np.ones_like(patch), np.random.default_rng(2), noise_only)
    assert noisy.max() == 1.0 and noisy.min() < 1.0  # noise, then clipped to [0, 1]


def _corrupt_in_child(args):
    transform, batch, seed = args
    transform.reseed(seed)
    return transform(data=batch.copy())


def test_seeded_determinism_and_the_same_batch_in_a_worker_process():
    batch = np.random.default_rng(1).random((6, 2, 32, 32)).astype(np.float32)
    first = Mood22AnomalyTransform(seed=11)(data=batch.copy())
    again = Mood22AnomalyTransform(seed=11)(data=batch.copy())
    other = Mood22AnomalyTransform(seed=12)(data=batch.copy())
    for key in ("data", "label", "target", "t"):
        np.testing.assert_array_equal(first[key], again[key])
    assert not np.array_equal(first["label"], other["label"])
    np.testing.assert_array_equal(first["target"], batch)
    assert first["label"].shape == (6, 1, 32, 32) and first["label"].dtype == np.float32 and not first["t"].any()
    # Reseeded per batch as the loader does, a pickled copy in another process makes the same batch.
    transform = Mood22AnomalyTransform(seed=0)
    seed = np.random.SeedSequence(99)
    with multiprocessing.get_context("fork").Pool(1) as pool:
        remote = pool.map(_corrupt_in_child, [(pickle.loads(pickle.dumps(transform)), batch, seed)])[0]
    local = _corrupt_in_child((transform, batch, seed))
    for key in ("data", "label"):
        np.testing.assert_array_equal(remote[key], local[key])


def test_cache_state_round_trip():
    transform = Mood22AnomalyTransform(seed=0)
    transform(data=np.random.default_rng(2).random((4, 1, 16, 16)).astype(np.float32))
    state = transform.state_dict()
    assert state["cache_crops"].shape == (4, 1, 13, 13)  # canvas 0.8 × 16
    restored = Mood22AnomalyTransform(seed=0)
    restored.load_state_dict(state)
    np.testing.assert_array_equal(restored.synthesizer.cache.state_dict()["crops"], state["cache_crops"].numpy())


def test_parameters_are_checked():
    with pytest.raises(ValueError, match="alpha_range"):
        Mood22Parameters(alpha_range=(0.5, 1.2))
    with pytest.raises(ValueError, match="smoothing_kernels"):
        Mood22Parameters(smoothing_kernels=(2,))


# -- the trainer ------------------------------------------------------------------------------------
def test_loss_is_bce_on_the_soft_label():
    trainer = object.__new__(Mood22Trainer)
    trainer.loss_region = "patch"
    logits = torch.tensor([[[[0.0, math.log(3.0)]]]])
    batch = {"label": torch.tensor([[[[0.5, 1.0]]]])}
    # logit 0, label 0.5: ln 2; σ(ln 3) = 3/4, label 1: ln(4/3); mean over the patch
    assert trainer.loss(logits, batch).item() == pytest.approx((math.log(2) + math.log(4 / 3)) / 2, rel=1e-6)
    trainer.loss_region = "brain"
    batch["mask"] = torch.tensor([[[[0, 1]]]], dtype=torch.uint8)
    assert trainer.loss(logits, batch).item() == pytest.approx(math.log(4 / 3), rel=1e-6)
    assert Mood22Trainer.scores == ("segmentation",) and not Mood22Trainer.conditional
    assert get_trainer_class("Mood22Trainer") is Mood22Trainer


def test_two_gloo_ranks_keep_identical_parameters(dataset, tmp_path):
    root, name = dataset
    env_vars = gloo_environment(root, tmp_path / "res")
    result = torchrun(["1", "2d_small", "0", "-tr", "Mood22Trainer", "--steps", "3"], env_vars)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "res" / name / "Mood22Trainer__DisyrePlans__2d_small" / "fold_0_seed_0"
    log = (run / "training_log.txt").read_text()
    assert "Global batch 8 (4 per rank × 2 ranks)" in log and "Parameters identical on 2 ranks" in log
    assert load_checkpoint(run / "checkpoint_final.pth")["step"] == 3
