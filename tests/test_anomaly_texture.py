"""Eq. (1): x_text = (1 − α_text·m)·x + α_text·m·x̄_fp, and the foreign-patch rescaling and cache."""
import numpy as np
import pytest

from disyre_v2.training.anomalies.texture import ForeignPatchCache, blend_texture, rescale_to_support

X = np.array([[[0.2, 0.4], [0.6, 0.8]]], dtype=np.float32)  # (C=1, 2, 2)
FOREIGN = np.array([[[1.0, 0.0], [0.5, 0.5]]], dtype=np.float32)
MASK = np.array([[1.0, 0.5], [0.25, 0.0]], dtype=np.float32)


def test_eq1_on_a_tiny_array():
    # w = α·m = [[0.5, 0.25], [0.125, 0]]; x_text = (1 − w)·x + w·x_fp
    x_text = blend_texture(X, FOREIGN, MASK, alpha_text=0.5)
    expected = [[[0.5 * 0.2 + 0.5 * 1.0, 0.75 * 0.4 + 0.25 * 0.0], [0.875 * 0.6 + 0.125 * 0.5, 0.8]]]
    np.testing.assert_allclose(x_text, expected, rtol=0, atol=1e-7)
    assert x_text.dtype == np.float32


def test_eq1_limits():
    np.testing.assert_array_equal(blend_texture(X, FOREIGN, MASK, 0.0), X)
    full = blend_texture(X, FOREIGN, np.ones((2, 2), np.float32), 1.0)
    np.testing.assert_array_equal(full, FOREIGN)


def test_rescaling_on_a_tiny_array():
    support = MASK > 0  # three pixels: target 0.2, 0.4, 0.6; foreign 1.0, 0.0, 0.5
    rescaled = rescale_to_support(FOREIGN, X, support)
    # (x_fp − 0) / (1 − 0) · (0.6 − 0.2) + 0.2; the off-support pixel follows the same map.
    np.testing.assert_allclose(rescaled, [[[0.6, 0.2], [0.4, 0.4]]], rtol=0, atol=1e-7)


def test_rescaled_patch_hits_the_targets_min_and_max_in_the_support_per_channel():
    rng = np.random.default_rng(3)
    target = rng.uniform(0.2, 0.6, size=(2, 16, 16)).astype(np.float32)
    foreign = rng.uniform(0.0, 1.0, size=(2, 16, 16)).astype(np.float32)
    support = np.zeros((16, 16), bool)
    support[3:9, 5:14] = True
    rescaled = rescale_to_support(foreign, target, support)
    for c in range(2):
        assert rescaled[c][support].min() == pytest.approx(target[c][support].min(), abs=1e-6)
        assert rescaled[c][support].max() == pytest.approx(target[c][support].max(), abs=1e-6)
        # An affine, increasing map: the order of the foreign values is kept.
        order = np.argsort(foreign[c][support], kind="stable")
        assert np.all(np.diff(rescaled[c][support][order]) >= -1e-7)


def test_constant_foreign_patch_becomes_the_targets_minimum():
    support = MASK > 0
    rescaled = rescale_to_support(np.full_like(X, 0.7), X, support)
    np.testing.assert_allclose(rescaled, np.full_like(X, 0.2))


def crops(values):
    return np.stack([np.full((1, 2, 2), v, np.float32) for v in values])


def test_cache_never_gives_a_sample_its_own_crop_when_others_exist():
    cache = ForeignPatchCache(capacity=0)
    rng = np.random.default_rng(0)
    for _ in range(50):
        chosen = cache.choose(crops([0, 1, 2]), rng)
        assert all(chosen[i, 0, 0, 0] != i for i in range(3))


def test_cache_uses_crops_of_earlier_batches_first_in_first_out():
    cache = ForeignPatchCache(capacity=2)
    rng = np.random.default_rng(0)
    only = cache.choose(crops([5]), rng)  # nothing else yet: its own crop
    assert only[0, 0, 0, 0] == 5 and len(cache) == 1
    assert cache.choose(crops([6]), rng)[0, 0, 0, 0] == 5  # the crop of the previous batch
    seen = {float(cache.choose(crops([9]), rng)[0, 0, 0, 0]) for _ in range(40)}
    # The cache keeps the last two crops of earlier batches; 5 has been pushed out long ago.
    assert seen <= {6.0, 9.0} and 5.0 not in seen and len(cache) == 2


def test_cache_is_reset_when_the_crop_shape_changes():
    cache = ForeignPatchCache(capacity=4)
    rng = np.random.default_rng(0)
    cache.choose(crops([1, 2]), rng)
    two_channel = np.full((1, 2, 2, 2), 3.0, np.float32)
    np.testing.assert_array_equal(cache.choose(two_channel, rng), two_channel)
