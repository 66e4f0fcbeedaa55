"""PII (Poisson Image Interpolation, Tan et al., MICCAI 2021): the Poisson blend on tiny arrays with
known answers, the seeded transform and its label, the trainer's loss. Train → predict → evaluate through
the CLI and exact resume: tests/test_comparison_cli.py, whose TRAINERS include PiiTrainer."""
import numpy as np
import pytest
import scipy.sparse
import torch
from scipy.sparse.linalg import spsolve

from disyre_v2.training.baselines.poisson_interpolation import (
    NEIGHBOURS, PoissonInterpolationTransform, guidance_divergence, poisson_interpolate, sample_region)
from disyre_v2.training.trainer.pii import PiiTrainer
from disyre_v2.training.trainer.registry import get_trainer_class

ROWS, COLS = slice(2, 8), slice(1, 8)  # Ω inside a 10 × 9 slice


def laplacian(f: np.ndarray, rows: slice, cols: slice) -> np.ndarray:
    """|N_p| f_p − Σ_{q ∈ N_p} f_q on the region (the 5-point stencil, every neighbour counted)."""
    total = 4.0 * f[..., rows, cols]
    for dr, dc in NEIGHBOURS:
        total -= f[..., rows.start + dr:rows.stop + dr, cols.start + dc:cols.stop + dc]
    return total


def random_pair(seed: int = 0, shape=(2, 10, 9)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random(shape), rng.random(shape)


# -- the Poisson blend -------------------------------------------------------------------------
def test_alpha_zero_leaves_the_image_unchanged():
    x, g = random_pair()
    np.testing.assert_allclose(poisson_interpolate(x, g, 0.0, ROWS, COLS), x, rtol=0, atol=1e-12)


def test_alpha_one_takes_the_foreign_gradients_only():
    x, g = random_pair()
    # The foreign patch equal to the image, or the image plus a constant: the same gradients, so x.
    for foreign in (x, x + 0.25):
        np.testing.assert_allclose(poisson_interpolate(x, foreign, 1.0, ROWS, COLS), x, rtol=0, atol=1e-12)


def test_the_blend_solves_the_poisson_equation_with_the_image_as_boundary():
    x, g = random_pair(1)
    f = poisson_interpolate(x, g, 0.4, ROWS, COLS)
    # Inside Ω: the discrete Laplacian of f equals the divergence of the guidance field.
    np.testing.assert_allclose(laplacian(f, ROWS, COLS), guidance_divergence(x, g, 0.4, ROWS, COLS), atol=1e-12)
    # Outside Ω (the Dirichlet boundary included): the image itself, bit for bit.
    outside = np.ones(x.shape[1:], bool)
    outside[ROWS, COLS] = False
    np.testing.assert_array_equal(f[:, outside], x[:, outside])
    assert np.abs(f[:, ROWS, COLS] - x[:, ROWS, COLS]).max() > 0.05


def test_the_sine_transform_solution_equals_a_sparse_solve_of_the_same_system():
    """The authors' formulation: one equation per pixel, identity rows outside Ω."""
    x, g = random_pair(2)
    height, width = x.shape[1:]
    f = poisson_interpolate(x, g, 0.7, ROWS, COLS)
    divergence = guidance_divergence(x, g, 0.7, ROWS, COLS)
    for c in range(len(x)):
        matrix = scipy.sparse.lil_matrix((height * width, height * width))
        rhs = x[c].ravel().copy()
        for k in range(height * width):
            matrix[k, k] = 1.0
        for i in range(ROWS.start, ROWS.stop):
            for j in range(COLS.start, COLS.stop):
                k = i * width + j
                matrix[k, k] = 4.0
                for dr, dc in NEIGHBOURS:
                    matrix[k, (i + dr) * width + j + dc] = -1.0
                rhs[k] = divergence[c, i - ROWS.start, j - COLS.start]
        reference = spsolve(matrix.tocsc(), rhs).reshape(height, width)
        np.testing.assert_allclose(f[c], reference, rtol=0, atol=1e-12)


def test_a_linear_ramp_blended_into_a_constant_gives_the_constant():
    """A ramp's 5-point Laplacian is 0, so its guidance has zero divergence: f is the harmonic
    interpolant of the constant boundary, the constant, whatever α."""
    x = np.full((1, 10, 9), 0.3)
    ramp = 0.05 * np.arange(9)[None, None, :] + 0.02 * np.arange(10)[None, :, None]
    for alpha in (0.3, 1.0):
        np.testing.assert_allclose(poisson_interpolate(x, ramp, alpha, ROWS, COLS), x, rtol=0, atol=1e-12)


def test_a_single_pixel_region_gets_the_mean_of_its_neighbours_plus_the_guidance():
    """|Ω| = 1: 4 f_p = Σ_q x_q + Σ_q v_pq. A constant image c and a foreign spike s at p: every v_pq = α·s
    (the image's own gradients are 0), so f_p = c + α·s."""
    x = np.full((1, 5, 5), 0.2)
    spike = np.zeros((1, 5, 5))
    spike[0, 2, 2] = 0.5
    for alpha in (0.25, 0.8):
        f = poisson_interpolate(x, spike, alpha, slice(2, 3), slice(2, 3))
        assert f[0, 2, 2] == pytest.approx(0.2 + alpha * 0.5, abs=1e-12)


def test_the_guidance_keeps_the_stronger_of_the_weighted_gradients():
    """v_pq = (1 − α)(x_p − x_q) if larger in magnitude than α(g_p − g_q), else α(g_p − g_q)."""
    x = np.zeros((1, 3, 3))
    g = np.zeros((1, 3, 3))
    x[0, 1, 1], g[0, 1, 1] = 0.8, 0.3  # the same difference to each of the four neighbours
    at_half = guidance_divergence(x, g, 0.5, slice(1, 2), slice(1, 2))
    assert at_half[0, 0, 0] == pytest.approx(4 * 0.5 * 0.8)  # the image's 0.4 beats the foreign 0.15
    at_ninety = guidance_divergence(x, g, 0.9, slice(1, 2), slice(1, 2))
    assert at_ninety[0, 0, 0] == pytest.approx(4 * 0.9 * 0.3)  # the foreign 0.27 beats the image's 0.08


def test_a_region_touching_the_slice_border_is_refused():
    x, g = random_pair()
    with pytest.raises(ValueError, match="outermost ring"):
        poisson_interpolate(x, g, 0.5, slice(0, 4), COLS)


def test_regions_follow_the_papers_sizes_and_stay_on_the_brain_core():
    rng = np.random.default_rng(3)
    brain = np.zeros((64, 64), bool)
    brain[20:44, 10:54] = True
    sides = []
    for _ in range(300):
        rows, cols = sample_region(brain, rng)
        centre = ((rows.start + rows.stop) // 2, (cols.start + cols.stop) // 2)
        assert brain[centre] and 1 <= rows.start and rows.stop <= 63 and 1 <= cols.start and cols.stop <= 63
        sides.append(rows.stop - rows.start)
    # Half-widths uniform in [round(0.05·64), round(0.2·64)) = [3, 13): squares of 6 to 24 pixels.
    assert min(sides) == 6 and max(sides) == 24
    assert sample_region(np.zeros((64, 64), bool), rng) is None


# -- the transform -----------------------------------------------------------------------------
def batch(n: int = 6, channels: int = 2, size: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    brain = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2) < (0.42 * size) ** 2
    data = (0.2 + 0.6 * rng.random((n, channels, size, size))).astype(np.float32) * brain
    mask = np.broadcast_to(brain, (n, 1, size, size)).astype(np.uint8)
    return data, mask


def test_the_transform_blends_one_square_per_slice_and_labels_alpha_on_its_changed_brain_pixels():
    data, mask = batch()
    out = PoissonInterpolationTransform(seed=4)(data=data.copy(), mask=mask)
    np.testing.assert_array_equal(out["target"], data)
    assert out["t"].dtype == np.int64 and (out["t"] == 0).all()
    assert out["data"].dtype == np.float32 and out["label"].shape == (6, 1, 32, 32)
    for i in range(len(data)):
        alpha = out["alpha_text"][i]
        assert 0.05 <= alpha <= 0.95
        region = out["anomaly_mask"][i, 0] > 0
        rows, cols = np.flatnonzero(region.any(axis=1)), np.flatnonzero(region.any(axis=0))
        assert region.any() and not (region & (mask[i, 0] == 0)).any()  # on the brain only
        changed = np.abs(out["data"][i] - data[i]).max(axis=0) > 1e-6
        assert not (changed & ~region).any()  # nothing changes outside Ω
        assert (out["data"][i][:, mask[i, 0] == 0] == 0).all()  # the background stays 0
        assert 0.0 <= out["data"][i].min() and out["data"][i].max() <= data[i].max()
        np.testing.assert_array_equal(out["label"][i, 0], np.where(region & changed, alpha, 0).astype(np.float32))
        assert (changed & region).mean() > 0 and rows.size <= 10 and cols.size <= 10  # half-width < round(0.2·32)


def test_the_same_seed_gives_the_same_batches():
    data, mask = batch()
    first = PoissonInterpolationTransform(seed=11)(data=data.copy(), mask=mask)
    second = PoissonInterpolationTransform(seed=11)(data=data.copy(), mask=mask)
    other = PoissonInterpolationTransform(seed=12)(data=data.copy(), mask=mask)
    for key in ("data", "label", "alpha_text"):
        np.testing.assert_array_equal(first[key], second[key])
    assert not np.array_equal(first["label"], other["label"])
    reseeded = PoissonInterpolationTransform(seed=0)
    reseeded(data=data.copy(), mask=mask)
    reseeded.reseed(11)  # the loader reseeds per batch
    np.testing.assert_array_equal(reseeded(data=data.copy(), mask=mask)["data"], first["data"])


def test_slices_without_a_foreign_slice_or_brain_stay_clean():
    data, mask = batch(n=1)
    out = PoissonInterpolationTransform(seed=0)(data=data.copy(), mask=mask)
    np.testing.assert_array_equal(out["data"], data)
    assert not out["label"].any() and out["alpha_text"][0] == 0
    data, mask = batch(n=3)
    mask[1] = 0
    data[1] = 0
    out = PoissonInterpolationTransform(seed=0)(data=data.copy(), mask=mask)
    assert not out["label"][1].any() and out["label"][0].any() and out["label"][2].any()


def test_the_trainer_predicts_one_logit_map_and_is_registered():
    assert get_trainer_class("PiiTrainer") is PiiTrainer
    assert PiiTrainer.scores == ("segmentation",) and not PiiTrainer.conditional
    assert PiiTrainer.extra_batch_keys == ("label",)
    trainer = object.__new__(PiiTrainer)
    trainer.loss_region = "patch"
    prediction = torch.zeros(1, 1, 2, 2)  # σ = 0.5 everywhere
    label = torch.tensor([[[[0.0, 0.5], [0.0, 0.0]]]])
    assert trainer.loss(prediction, {"label": label}).item() == pytest.approx(np.log(2.0))
    assert isinstance(trainer.synthesis_transform(0), PoissonInterpolationTransform)
    assert trainer.target_transforms() == []
