"""Comparison methods: losses, corruptions and scores on tiny arrays with known answers."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from disyre_v2.errors import UserError
from disyre_v2.inference.model_free import (JointHistogram, ModelFreePredictor, channel_index, intensity_map,
                                            unclipped)
from disyre_v2.inference.model_loading import LoadedModel
from disyre_v2.inference.predictor import DisyrePredictor
from disyre_v2.inference.scores import segmentation_score, unconditional_score
from disyre_v2.training.baselines.coarse_noise import CoarseNoiseTransform, coarse_noise
from disyre_v2.training.baselines.interpolation_label import InterpolationLabelTransform
from disyre_v2.training.network.vae import ConvVAE, kl_divergence, vae_widths
from disyre_v2.training.trainer.baselines import DaeTrainer, FpiSegmentationTrainer, VaeTrainer
from tests.test_predictor import Identity, plans_for


def bare(trainer_class, **attributes):
    """A trainer without data or network: enough to call its loss."""
    trainer = object.__new__(trainer_class)
    trainer.__dict__.update(attributes)
    return trainer


# -- DAE: coarse noise -------------------------------------------------------------------------
def test_coarse_noise_at_full_resolution_is_the_rolled_grid():
    """With one cell per pixel, bilinear upsampling is the identity: the noise is the drawn grid, rolled."""
    noise = coarse_noise((2, 1, 4, 4), resolution=4, sigma=0.2, rng=np.random.default_rng(5))
    replay = np.random.default_rng(5)
    grid = replay.normal(0.0, 0.2, size=(2, 1, 4, 4)).astype(np.float32)
    for i in range(2):
        shift = (int(replay.integers(4)), int(replay.integers(4)))
        np.testing.assert_allclose(noise[i], np.roll(grid[i], shift, axis=(-2, -1)), rtol=0, atol=1e-6)


def test_coarse_noise_of_one_cell_is_constant_per_sample_and_channel():
    noise = coarse_noise((3, 2, 8, 8), resolution=1, sigma=1.0, rng=np.random.default_rng(0))
    assert np.allclose(noise, noise[:, :, :1, :1])
    assert len(np.unique(noise[:, :, 0, 0])) == 6  # independent per sample and channel


def test_coarse_noise_varies_smoothly_at_the_grid_scale():
    """16 cells over 64 pixels: neighbouring pixels differ far less than pixels a grid cell apart."""
    noise = coarse_noise((8, 1, 64, 64), resolution=16, sigma=0.2, rng=np.random.default_rng(1))
    neighbour = np.abs(np.diff(noise, axis=-1)).mean()
    apart = np.abs(noise[..., 8:] - noise[..., :-8]).mean()
    assert neighbour < apart / 3
    assert 0.1 < noise.std() < 0.2  # interpolation between N(0, 0.2²) cells lowers the spread


def test_coarse_noise_transform_corrupts_the_brain_only():
    data = np.full((2, 2, 8, 8), 0.5, np.float32)
    mask = np.zeros((2, 1, 8, 8), np.uint8)
    mask[:, :, 2:6, 2:6] = 1
    out = CoarseNoiseTransform(resolution=2, sigma=0.2, seed=0)(data=data.copy(), mask=mask)
    np.testing.assert_array_equal(out["target"], data)
    assert (out["t"] == 0).all() and out["t"].dtype == np.int64
    outside = np.broadcast_to(mask == 0, data.shape)
    np.testing.assert_array_equal(out["data"][outside], data[outside])
    assert np.abs(out["data"] - data)[~outside].min() > 0
    with pytest.raises(ValueError, match="sigma > 0"):
        CoarseNoiseTransform(sigma=0)


def test_dae_loss_is_the_brain_masked_mean_squared_error():
    prediction = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    batch = {"target": torch.zeros(1, 1, 2, 2), "mask": torch.tensor([[[[1, 0], [0, 1]]]], dtype=torch.uint8)}
    # mean over all 4 pixels of (1² + 4²) on the two brain pixels
    assert bare(DaeTrainer).loss(prediction, batch).item() == pytest.approx(17 / 4)


# -- VAE ---------------------------------------------------------------------------------------
def test_kl_divergence_known_values():
    mean = torch.tensor([[0.0, 1.0, 0.0]])
    log_variance = torch.tensor([[0.0, 0.0, math.log(2.0)]])
    np.testing.assert_allclose(kl_divergence(mean, log_variance).numpy(),
                               [[0.0, 0.5, 0.5 * (1 - math.log(2.0))]], rtol=1e-6)


def test_vae_widths_halve_the_patch_to_two_pixels():
    assert vae_widths([64, 64]) == [16, 32, 64, 128, 256]
    assert vae_widths([128, 128]) == [16, 32, 64, 128, 256, 512]  # UPD's 128-pixel encoder
    assert vae_widths([16, 16]) == [16, 32, 64]


def test_vae_samples_in_training_and_decodes_the_mean_in_eval():
    torch.manual_seed(0)
    vae = ConvVAE(2, [16, 16], [8, 16], latent_dim=4)
    x = torch.rand(3, 2, 16, 16)
    reconstruction, mean, log_variance = vae(x)
    assert reconstruction.shape == x.shape and mean.shape == log_variance.shape == (3, 4)
    vae.eval()
    first, second = vae(x, torch.zeros(3, dtype=torch.long)), vae(x)
    torch.testing.assert_close(first, second, rtol=0, atol=0)  # deterministic: decodes μ, ignores t
    torch.testing.assert_close(first, vae.decode(vae.encode(x)[0]))
    with pytest.raises(ValueError, match="divisible by 2"):
        ConvVAE(1, [12, 12], [8, 16, 32], latent_dim=4)


def test_vae_loss_is_mse_plus_weighted_mean_kl():
    stub = bare(VaeTrainer, loss_region="patch")
    target = torch.zeros(2, 1, 2, 2)
    reconstruction = torch.full((2, 1, 2, 2), 0.5)
    mean, log_variance = torch.tensor([[1.0, 0.0], [0.0, 0.0]]), torch.zeros(2, 2)
    batch = {"target": target, "mask": torch.ones(2, 1, 2, 2)}
    expected = 0.25 + 1e-3 * (0.5 / 4)  # MSE 0.5², mean KL over 2 samples × 2 dimensions
    assert stub.loss((reconstruction, mean, log_variance), batch).item() == pytest.approx(expected)
    # Validation (eval mode): the reconstruction error alone.
    assert stub.loss(reconstruction, batch).item() == pytest.approx(0.25)


# -- FPI ---------------------------------------------------------------------------------------
def test_interpolation_label_is_alpha_times_mask():
    mask = np.zeros((2, 1, 3, 3), np.float32)
    mask[0, 0, 1, 1], mask[1, 0, 0, :] = 1.0, 0.5
    out = InterpolationLabelTransform()(alpha_text=np.array([0.8, 0.2], np.float32), anomaly_mask=mask)
    expected = np.zeros_like(mask)
    expected[0, 0, 1, 1], expected[1, 0, 0, :] = 0.8, 0.1
    np.testing.assert_allclose(out["label"], expected, rtol=1e-6)
    with pytest.raises(KeyError, match="anomaly synthesis first"):
        InterpolationLabelTransform()(anomaly_mask=mask)


def test_fpi_loss_is_binary_cross_entropy_on_the_soft_label():
    stub = bare(FpiSegmentationTrainer, loss_region="patch")
    label = torch.tensor([[[[0.0, 0.3], [1.0, 0.5]]]])
    logits = torch.zeros_like(label)  # σ = 0.5: BCE = log 2 whatever the label
    assert stub.loss(logits, {"label": label}).item() == pytest.approx(math.log(2))
    logits = torch.tensor([[[[-2.0, 0.0], [3.0, 0.0]]]])
    p = torch.sigmoid(logits)
    expected = -(label * p.log() + (1 - label) * (1 - p).log()).mean()
    assert stub.loss(logits, {"label": label}).item() == pytest.approx(expected.item())


def test_segmentation_score_is_the_sigmoid_of_the_logit():
    windows = torch.rand(2, 2, 4, 4)
    logits = torch.tensor([-1.0, 2.0]).view(2, 1, 1, 1).expand(2, 1, 4, 4)
    scores, restoration = segmentation_score(lambda x, t: logits)(windows)
    torch.testing.assert_close(scores, torch.sigmoid(logits[:, 0]))
    torch.testing.assert_close(restoration, windows)
    with pytest.raises(ValueError, match="one output channel"):
        segmentation_score(lambda x, t: x)(windows)


def test_residual_score_of_a_reconstruction():
    windows = torch.tensor([[[[0.2, 0.4]], [[0.6, 1.0]]]])  # (1, 2 channels, 1, 2)
    scores, _ = unconditional_score(lambda x, t: torch.zeros_like(x))(windows)
    torch.testing.assert_close(scores, torch.tensor([[[0.4, 0.7]]]))  # mean over channels of |x − 0|


def test_the_predictor_uses_the_trainers_score_and_refuses_others():
    plans = plans_for(1)
    fpi = LoadedModel(Identity(), False, Path("fpi"), ("segmentation",))
    assert DisyrePredictor(plans, "2d_small", [fpi]).score == "segmentation"
    dae = LoadedModel(Identity(), False, Path("dae"), ("residual",))
    assert DisyrePredictor(plans, "2d_small", [dae]).describe()["levels"] == []
    with pytest.raises(ValueError, match="--score ensemble does not fit the model dae.*Use --score residual"):
        DisyrePredictor(plans, "2d_small", [dae], score="ensemble")
    disyre = LoadedModel(Identity(), True, Path("disyre"))
    assert DisyrePredictor(plans, "2d_small", [disyre]).score == "ensemble"  # checkpoints without 'scores'
    with pytest.raises(ValueError, match="--score segmentation does not fit"):
        DisyrePredictor(plans, "2d_small", [disyre], score="segmentation")


# -- model-free intensity baselines -----------------------------------------------------------
def test_intensity_map_bright_and_dark():
    data = np.array([[[[0.2, 1.4]]], [[[0.9, 0.1]]]], np.float32)  # (C=2, 1, 1, 2)
    np.testing.assert_allclose(intensity_map(data, 1, "bright"), [[[0.9, 0.1]]])
    np.testing.assert_allclose(intensity_map(data, 0, "dark"), [[[0.8, 0.0]]], atol=1e-6)  # max(1 − x, 0)
    with pytest.raises(ValueError, match="direction"):
        intensity_map(data, 0, "up")


def test_joint_histogram_counts_scores_and_round_trips(tmp_path):
    histogram = JointHistogram(channels=2, bins=4, upper=1.0)
    data = np.array([[[[0.1, 0.1, 0.6, 2.0, -1.0]]], [[[0.1, 0.2, 0.6, 0.3, 0.9]]]], np.float32)
    mask = np.array([[[True, True, True, True, False]]])
    histogram.add(data, mask)
    expected = np.zeros((4, 4))
    expected[0, 0] = 2  # (0.1, 0.1), (0.1, 0.2)
    expected[2, 2] = 1  # (0.6, 0.6)
    expected[3, 1] = 1  # (2.0 ≥ upper → last bin, 0.3)
    np.testing.assert_array_equal(histogram.counts, expected)
    scores = histogram.score(data, mask)
    assert scores[0, 0, 4] == 0  # outside the mask
    seen_twice, seen_once = scores[0, 0, 0], scores[0, 0, 2]
    unseen = histogram.score(np.array([[[[0.1]]], [[[0.9]]]], np.float32))[0, 0, 0]
    assert seen_twice < seen_once < unseen
    density = histogram.density()
    assert density.sum() == pytest.approx(1.0)
    assert seen_twice == pytest.approx(-np.log(density[0, 0] + 1e-12))
    histogram.save(tmp_path / "h.npz", {"cases": ["a"]})
    loaded = JointHistogram.load(tmp_path / "h.npz", {"cases": ["a"]})
    np.testing.assert_array_equal(loaded.counts, histogram.counts)
    assert loaded.upper == 1.0 and loaded.bins == 4
    assert JointHistogram.load(tmp_path / "h.npz", {"cases": ["b"]}) is None  # fitted on other cases
    (tmp_path / "h.npz").write_bytes(b"PK\x03\x04damaged")
    assert JointHistogram.load(tmp_path / "h.npz", {"cases": ["a"]}) is None  # refitted, not a crash
    with pytest.raises(ValueError, match="empty"):
        JointHistogram(1, 4).density()


def test_channels_by_name_or_number_and_clear_errors():
    plans = plans_for(2)
    names = plans["channel_names"]
    assert channel_index(plans, names["1"]) == 1 and channel_index(plans, "0") == 0
    assert channel_index(plans_for(1), None) == 0
    with pytest.raises(UserError, match="needs --channel: the dataset has 2 channels"):
        channel_index(plans, None)
    with pytest.raises(UserError, match="--channel FLAIR is not a channel"):
        channel_index(plans, "FLAIR")


def test_model_free_predictor_lifts_the_clip_and_filters_like_a_model():
    plans = plans_for(1)
    predictor = ModelFreePredictor(plans, "2d_small", "intensity")
    assert predictor.configuration["normalization"]["clip"][1] > 1e30
    assert plans["configurations"]["2d_small"]["normalization"]["clip"] == unclipped(
        plans["configurations"]["2d_small"])["normalization"]["clip"][:1] + [1.0]
    data = np.zeros((1, 5, 5, 5), np.float32)
    data[0, 2, 2, 2] = 3.0  # one bright voxel: above the old clip, removed by a median filter
    mask = np.ones((5, 5, 5), bool)
    unfiltered, restoration = predictor.predict_preprocessed(data, mask, filtered=False)
    assert restoration is None and unfiltered[2, 2, 2] == 3.0
    filtered, _ = predictor.predict_preprocessed(data, mask)
    assert filtered.max() == (3.0 if predictor.median_filter_size <= 1 else 0.0)
    with pytest.raises(ValueError, match="restores nothing"):
        predictor.predict_preprocessed(data, mask, with_restoration=True)
    with pytest.raises(ValueError, match="needs the histogram"):
        ModelFreePredictor(plans, "2d_small", "joint_histogram")
