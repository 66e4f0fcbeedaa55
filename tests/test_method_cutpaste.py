"""CutPaste (Li et al., CVPR 2021) with UPD's patch-level localisation: the augmentations, the Gaussian
density, the localisation on tiny arrays with known answers; then train → predict → evaluate through the
CLI, checkpoints loaded weights_only, and exact resume."""
import json
import math

import numpy as np
import pytest
import torch

from disyre_v2.inference.model_loading import load_models
from disyre_v2.inference.patch_density import patch_density_score, patch_scores_to_pixels, sub_patches
from disyre_v2.inference.predictor import DisyrePredictor
from disyre_v2.inference.sliding_window import sliding_window_scores, window_starts
from disyre_v2.run import train as train_cli
from disyre_v2.training.baselines.cutpaste import (CutPasteTransform, color_jitter, cut_paste, cut_paste_scar,
                                                   random_crop, scaled_scar_sizes)
from disyre_v2.training.baselines.gaussian_density import GaussianDensityFit, mahalanobis, precision_matrix
from disyre_v2.training.network.cutpaste_net import CutPasteNet
from disyre_v2.training.run_training import train
from disyre_v2.training.trainer.checkpoint import load_checkpoint
from disyre_v2.training.trainer.cutpaste import CutPasteTrainer
from tests.test_comparison_cli import dataset, env, predict_and_evaluate  # noqa: F401  (fixtures)
from tests.trainer_fixtures import crash_then_resume


def image(channels=2, side=16, seed=0):
    return np.random.default_rng(seed).uniform(0.1, 0.9, size=(channels, side, side)).astype(np.float32)


# -- augmentations --------------------------------------------------------------------------------
def test_cut_paste_pastes_the_cut_region_exactly_at_the_drawn_place():
    original = image()
    for seed in range(20):
        out, paste = cut_paste(original, np.random.default_rng(seed), jitter=0.0)
        (sy, sx), (h, w), (ty, tx) = paste.source, paste.size, paste.target
        np.testing.assert_array_equal(out[:, ty:ty + h, tx:tx + w], original[:, sy:sy + h, sx:sx + w])
        outside = np.ones((16, 16), bool)
        outside[ty:ty + h, tx:tx + w] = False
        np.testing.assert_array_equal(out[:, outside], original[:, outside])
        # Area at most 15 % of the crop (w, h floored from √(A·r), √(A/r) with A 2–15 % of it).
        assert 1 <= h * w <= 0.15 * 256 and paste.footprint == (h, w) and paste.angle == 0.0


def test_cut_paste_jitters_the_piece_in_brightness_and_contrast_only():
    original = image()
    out, paste = cut_paste(original, np.random.default_rng(3), jitter=0.1)
    (sy, sx), (h, w), (ty, tx) = paste.source, paste.size, paste.target
    piece, pasted = original[:, sy:sy + h, sx:sx + w], out[:, ty:ty + h, tx:tx + w]
    # m + c(b·x − m) is affine in x: one scale and offset explain every pasted value.
    scale, offset = np.polyfit(piece.ravel(), pasted.ravel(), 1)
    np.testing.assert_allclose(pasted, scale * piece + offset, atol=1e-5)
    assert 0.81 <= scale <= 1.21 and not np.allclose(pasted, piece)
    assert color_jitter(piece, np.random.default_rng(0), 0.0) is piece
    assert color_jitter(np.ones((1, 3, 3), np.float32), np.random.default_rng(1), 0.5).max() <= 1.0  # clipped


def test_scar_sizes_follow_upd_scaled_to_the_crop():
    assert scaled_scar_sizes(32) == ((1, 8), (5, 13))  # UPD's, at its 32-pixel crops
    assert scaled_scar_sizes(16) == ((1, 4), (3, 7))
    original = image()
    widths, lengths = set(), set()
    for seed in range(60):
        out, paste = cut_paste_scar(original, np.random.default_rng(seed), jitter=0.0, rotation=(0.0, 0.0))
        (h, w), (ty, tx) = paste.size, paste.target
        widths.add(w)
        lengths.add(h)
        assert paste.footprint == (h, w)
        (sy, sx) = paste.source
        np.testing.assert_array_equal(out[:, ty:ty + h, tx:tx + w], original[:, sy:sy + h, sx:sx + w])
    assert widths == {1, 2, 3, 4} and lengths == {3, 4, 5, 6, 7}
    # Rotated: within ±45°, the changed pixels inside the grown footprint, at most w·l of them plus rounding.
    for seed in range(20):
        out, paste = cut_paste_scar(original, np.random.default_rng(seed), jitter=0.0)
        (h, w), (ty, tx), (fh, fw) = paste.size, paste.target, paste.footprint
        assert -45 <= paste.angle <= 45 and fh >= min(h, w) and fw >= min(h, w)
        changed = (out != original).any(0)
        outside = changed.copy()
        outside[ty:ty + fh, tx:tx + fw] = False
        assert not outside.any() and changed.sum() <= 2 * h * w


def test_random_crop_is_centred_on_brain():
    data = np.zeros((1, 32, 32), np.float32)
    mask = np.zeros((1, 32, 32), np.uint8)
    mask[0, 20, 5] = 1
    crop, crop_mask = random_crop(data, mask, 8, np.random.default_rng(0))
    assert crop.shape == (1, 8, 8) and crop_mask[0, 4, 4] == 1


def test_transform_makes_three_labelled_views_and_is_seeded():
    rng = np.random.default_rng(4)
    batch = {"data": rng.uniform(size=(3, 2, 16, 16)).astype(np.float32), "mask": np.ones((3, 1, 16, 16), np.uint8)}
    first = CutPasteTransform(8, seed=11)(**{k: v.copy() for k, v in batch.items()})
    again = CutPasteTransform(8, seed=11)(**{k: v.copy() for k, v in batch.items()})
    other = CutPasteTransform(8, seed=12)(**{k: v.copy() for k, v in batch.items()})
    assert first["data"].shape == (9, 2, 8, 8) and first["mask"].shape == (9, 1, 8, 8)
    np.testing.assert_array_equal(first["target"], [0, 0, 0, 1, 1, 1, 2, 2, 2])
    assert first["target"].dtype == np.int64 and (first["t"] == 0).all()
    for key in ("data", "mask", "target"):
        np.testing.assert_array_equal(first[key], again[key])
    assert not np.array_equal(first["data"], other["data"])
    # The augmented views differ from their normal crop; reseeding replays a batch.
    assert all(not np.array_equal(first["data"][i], first["data"][i + 3]) for i in range(3))
    transform = CutPasteTransform(8)
    transform.reseed(np.random.SeedSequence(5))
    replay = transform(**{k: v.copy() for k, v in batch.items()})
    transform.reseed(np.random.SeedSequence(5))
    np.testing.assert_array_equal(transform(**{k: v.copy() for k, v in batch.items()})["data"], replay["data"])


# -- the Gaussian density ---------------------------------------------------------------------------
def test_mahalanobis_distance_equals_the_hand_computation_in_2d():
    mean = torch.tensor([1.0, 2.0])
    precision = torch.linalg.inv(torch.tensor([[2.0, 1.0], [1.0, 2.0]]))  # Σ⁻¹ = (1/3)[[2, −1], [−1, 2]]
    points = torch.tensor([[2.0, 3.0], [2.0, 1.0], [1.0, 2.0]])
    # (x − μ) = (1, 1): (1/3)(2 − 1 − 1 + 2) = 2/3; (1, −1): (1/3)(2 + 1 + 1 + 2) = 2; 0.
    expected = torch.tensor([math.sqrt(2 / 3), math.sqrt(2.0), 0.0])
    torch.testing.assert_close(mahalanobis(points, mean, precision), expected)


def test_density_fit_is_ledoit_wolf_and_independent_of_batching():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(40, 6)) * np.array([0.5, 1, 2, 3, 1, 1]) + 4.0
    one, two = GaussianDensityFit(6), GaussianDensityFit(6)
    one.add(torch.from_numpy(features))
    for part in np.array_split(features, 3):
        two.add(torch.from_numpy(part))
    mean, covariance, shrinkage = one.estimate()
    mean2, covariance2, shrinkage2 = two.estimate()
    torch.testing.assert_close(covariance, covariance2)
    assert shrinkage == pytest.approx(shrinkage2)
    # By hand on the centred features (the formula of sklearn's ledoit_wolf).
    centred = features - features.mean(0)
    sample = centred.T @ centred / 40
    scale = np.trace(sample) / 6
    gamma = ((sample - scale * np.eye(6)) ** 2).sum() / 6
    beta = ((np.sum(centred ** 2, 1) ** 2).sum() / 40 - (sample ** 2).sum()) / (40 * 6)
    expected = min(beta, gamma) / gamma
    assert shrinkage == pytest.approx(expected) and 0 < shrinkage < 1
    np.testing.assert_allclose(covariance.numpy(), (1 - expected) * sample + expected * scale * np.eye(6), atol=1e-10)
    np.testing.assert_allclose(mean.numpy(), features.mean(0))


def test_shrinkage_keeps_the_covariance_invertible_with_fewer_samples_than_features():
    features = torch.from_numpy(np.random.default_rng(1).normal(size=(5, 20)))
    fit = GaussianDensityFit(20)
    fit.add(features)
    _, covariance, shrinkage = fit.estimate()
    assert shrinkage > 0.1 and torch.linalg.matrix_rank(covariance) == 20  # the sample covariance has rank 4
    precision = precision_matrix(covariance)
    torch.testing.assert_close(precision @ covariance, torch.eye(20, dtype=torch.float64), atol=1e-8, rtol=0)


# -- localisation ----------------------------------------------------------------------------------
def test_sub_patches_are_the_windows_pieces_in_row_major_order():
    windows = torch.arange(2 * 16 * 16, dtype=torch.float32).reshape(2, 1, 16, 16)
    pieces = sub_patches(windows, 8, 4)  # 3 × 3 per window
    assert pieces.shape == (18, 1, 8, 8)
    torch.testing.assert_close(pieces[9 + 5], windows[1, :, 4:12, 8:16])
    with pytest.raises(ValueError, match="multiple of the stride"):
        sub_patches(windows, 8, 3)


def test_a_single_outlying_patch_scores_highest_where_it_lies():
    scores = torch.zeros(1, 25)  # 5 × 5 sub-patches of 8 px at stride 2 on a 16-pixel window
    scores[0, 2 * 5 + 3] = 1.0  # row 2, column 3: pixels 4..11 × 6..13
    pixels = patch_scores_to_pixels(scores, (16, 16), 8, 2)[0]
    inside = torch.zeros(16, 16, dtype=torch.bool)
    inside[4:12, 6:14] = True
    assert (pixels[~inside] == 0).all() and (pixels[inside] > 0).all()
    peak = divmod(int(pixels.argmax()), 16)
    assert peak in {(7, 9), (7, 10), (8, 9), (8, 10)}  # the sub-patch's centre
    constant = patch_scores_to_pixels(torch.full((1, 25), 3.0), (16, 16), 8, 2)
    torch.testing.assert_close(constant, torch.full((1, 16, 16), 3.0))


class MeanFeature(torch.nn.Module):
    """A stand-in CutPaste network: feature = the sub-patch's mean, density N(0, 1)."""

    score_patch, score_stride = 4, 2

    def features(self, x):
        return x.mean(dim=(1, 2, 3))[:, None]

    def density_distance(self, features):
        return mahalanobis(features, torch.zeros(1), torch.eye(1))


def test_patch_density_score_finds_a_bright_square():
    windows = torch.zeros(2, 1, 16, 16)
    windows[1, 0, 10:14, 2:6] = 1.0
    scores, restored = patch_density_score(MeanFeature())(windows)
    assert scores.shape == (2, 16, 16) and torch.equal(restored, windows)
    assert (scores[0] == 0).all()
    assert scores[1, 10:14, 2:6].min() > scores[1, :8].max()
    peak = divmod(int(scores[1].argmax()), 16)
    assert 10 <= peak[0] < 14 and 2 <= peak[1] < 6


class CountingMeanFeature(MeanFeature):
    """MeanFeature that counts the sub-patches it encodes."""

    def __init__(self):
        super().__init__()
        self.encoded = 0

    def features(self, x):
        self.encoded += len(x)
        return super().features(x)


def test_sub_patches_outside_the_brain_are_not_encoded_and_brain_pixels_score_the_same():
    windows = torch.from_numpy(np.random.default_rng(3).uniform(0, 1, (2, 1, 16, 16)).astype(np.float32))
    brain = torch.zeros(2, 16, 16, dtype=torch.bool)
    brain[0, 5, 9] = True  # one pixel: the sub-patches (4 px, stride 2) at rows 2, 4 × columns 6, 8 cover it
    brain[1, 10:, :] = True  # rows 10..15: sub-patch rows 4, 6 wholly inside, row 8 too, rows 0, 2 wholly outside
    network = CountingMeanFeature()
    with_brain, _ = patch_density_score(network)(windows, brain)
    assert network.encoded == 4 + 3 * 7  # of 2 × 49
    plain, _ = patch_density_score(MeanFeature())(windows)
    torch.testing.assert_close(with_brain[brain], plain[brain], rtol=0, atol=0)


def test_sliding_windows_give_the_patch_density_score_its_brain_and_the_map_inside_it_is_unchanged():
    rng = np.random.default_rng(4)
    slices = torch.from_numpy(rng.uniform(0, 1, (3, 1, 30, 26)).astype(np.float32))
    yy, xx = np.mgrid[:30, :26]
    disc = torch.from_numpy((yy - 15) ** 2 + (xx - 13) ** 2 < 81)
    brain = disc[None].repeat(3, 1, 1)
    brain[2] = False  # a slice without brain: no window of it is scored
    network = CountingMeanFeature()
    aware = patch_density_score(network)
    assert aware.takes_brain

    def unaware(windows):  # the same score without the brain: every sub-patch encoded
        return patch_density_score(MeanFeature())(windows)

    expected = sum(bool(brain[n, y + i:y + i + 4, x + j:x + j + 4].any())  # sub-patches (4 px, stride 2) with brain
                   for n in range(3) for y in window_starts(30, 16, 0.25) for x in window_starts(26, 16, 0.25)
                   if brain[n, y:y + 16, x:x + 16].any() for i in range(0, 13, 2) for j in range(0, 13, 2))
    for fixed_batch in (False, True):
        network.encoded = 0
        skipped, _ = sliding_window_scores(slices, brain, aware, (16, 16), batch_windows=5, fixed_batch=fixed_batch)
        every, _ = sliding_window_scores(slices, brain, unaware, (16, 16), batch_windows=5, fixed_batch=fixed_batch)
        torch.testing.assert_close(skipped[brain], every[brain], rtol=1e-6, atol=1e-6)
        assert network.encoded == expected < 2 * 20 * 49  # 2 slices × 5 × 4 windows × 7 × 7 sub-patches


def test_an_unfitted_density_is_refused():
    network = CutPasteNet(1, widths=(4,), head_widths=(4,), embedding_dim=4, score_patch=8, score_stride=2).eval()
    with pytest.raises(ValueError, match="not fitted.*-chk final"):
        patch_density_score(network)(torch.zeros(1, 1, 16, 16))


# -- training, checkpoints and the CLI ---------------------------------------------------------------
def test_sizes_follow_upd_fractions_of_the_patch():
    trainer = object.__new__(CutPasteTrainer)
    for patch, crop, sub in ((128, 32, (16, 4)), (64, 16, (8, 2)), (16, 8, (8, 2))):
        trainer.configuration = {"patch_size": [patch, patch]}
        assert trainer.crop_size() == crop and trainer.score_patch_and_stride() == sub


def test_train_predict_evaluate_and_reload(env):
    root, name, tmp_path = env
    assert train_cli.main(["1", "2d_small", "all", "-tr", "CutPasteTrainer", "--steps", "3"]) == 0
    model = tmp_path / "results" / name / "CutPasteTrainer__DisyrePlans__2d_small"
    state = torch.load(model / "fold_all_seed_0" / "checkpoint_final.pth", weights_only=True)  # plain data only
    assert state["trainer_name"] == "CutPasteTrainer" and state["scores"] == ["patch_density"] and state["step"] == 3
    assert int(state["network"]["gde_count"]) > 0 and state["network"]["gde_precision"].shape == (128, 128)
    summary, sidecar = predict_and_evaluate(root, name, tmp_path / "maps", "-tr", "CutPasteTrainer")
    assert sidecar["score"] == "patch_density" and sidecar["levels"] == []
    # Loaded twice from the checkpoint: the same map.
    rng = np.random.default_rng(0)
    data = rng.uniform(size=(2, 3, 20, 18)).astype(np.float32)
    mask = np.zeros((3, 20, 18), bool)
    mask[:, 3:17, 3:15] = True
    plans = json.loads((model / "plans.json").read_text())
    maps = [DisyrePredictor(plans, "2d_small", load_models(model, "2d_small")).predict_preprocessed(data, mask)[0]
            for _ in range(2)]
    np.testing.assert_array_equal(maps[0], maps[1])
    assert np.isfinite(maps[0]).all() and maps[0][mask].max() > 0


def test_resume_reaches_the_uninterrupted_weights_and_density(env, monkeypatch):
    root, name, tmp_path = env
    straight = train(1, "2d_small", 0, trainer="CutPasteTrainer", seed=2, num_steps=4, val_every=2, deterministic=True)
    reference = load_checkpoint(straight / "checkpoint_final.pth")["network"]
    monkeypatch.setenv("DISYRE_results", str(tmp_path / "second"))
    resumed = crash_then_resume(monkeypatch, CutPasteTrainer, 2, 1, "2d_small", 0, trainer="CutPasteTrainer",
                                seed=2, num_steps=4, val_every=2, deterministic=True)
    final = load_checkpoint(resumed / "checkpoint_final.pth")["network"]
    assert final.keys() == reference.keys() and int(final["gde_count"]) > 0
    for key in reference:
        torch.testing.assert_close(final[key], reference[key], rtol=0, atol=0)


def test_two_gloo_ranks_train_and_rank_0_fits_the_density(dataset, tmp_path):
    """Under torchrun the ranks train one network; rank 0 alone fits the density into checkpoint_final.pth."""
    from tests.test_distributed_training import gloo_environment, torchrun
    root, name = dataset
    env_vars = gloo_environment(root, tmp_path / "res")
    result = torchrun(["1", "2d_small", "0", "-tr", "CutPasteTrainer", "--steps", "3"], env_vars)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "res" / name / "CutPasteTrainer__DisyrePlans__2d_small" / "fold_0_seed_0"
    log = (run / "training_log.txt").read_text()
    assert "Parameters identical on 2 ranks" in log and "CutPaste density:" in log
    state = load_checkpoint(run / "checkpoint_final.pth")
    assert state["step"] == 3 and int(state["network"]["gde_count"]) > 0
