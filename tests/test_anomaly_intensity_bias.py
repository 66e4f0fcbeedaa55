"""Eq. (2): x_sc = clip(x_text + sign·α_bias·m·m_tissue, 0, 1), α_bias_eff = max |x_sc − x_text|."""
import numpy as np
import pytest
from scipy import ndimage

from disyre_v2.training.anomalies.intensity_bias import (
    apply_bias, choose_cluster, effective_bias, quantise, tissue_mask)

CENTROIDS = [0.1, 0.5, 0.9]


def test_quantisation_to_the_nearest_centroid():
    x = np.array([0.0, 0.29, 0.31, 0.3, 0.69, 0.71, 0.7, 1.0], dtype=np.float64)
    # Midpoints 0.3 and 0.7; a tie goes to the lower centroid.
    assert quantise(x, CENTROIDS).tolist() == [0, 0, 1, 0, 1, 2, 1, 2]


def test_cluster_is_always_one_present_inside_the_mask():
    labels = np.array([[0, 0, 2], [1, 2, 2]])
    support = np.array([[False, False, True], [False, True, True]])
    rng = np.random.default_rng(0)
    assert {choose_cluster(labels, support, 3, rng) for _ in range(30)} == {2}


def test_cluster_probability_is_proportional_to_its_pixels_in_the_mask():
    labels = np.array([0, 1, 1, 1, 2, 2])
    support = np.array([True, True, True, True, False, False])  # cluster 0: 1 px, cluster 1: 3 px
    rng = np.random.default_rng(1)
    draws = np.array([choose_cluster(labels, support, 3, rng) for _ in range(4000)])
    assert not np.any(draws == 2)
    assert np.mean(draws == 0) == pytest.approx(0.25, abs=0.03)  # > 4 binomial standard errors


def test_empty_support_is_an_error():
    with pytest.raises(ValueError, match="empty"):
        choose_cluster(np.zeros(3, int), np.zeros(3, bool), 2, np.random.default_rng(0))


def test_tissue_mask_is_the_smoothed_cluster_indicator():
    labels = np.array([[0, 1, 1, 0], [0, 1, 0, 0], [2, 2, 0, 1]])
    indicator = (labels == 1).astype(np.float32)
    np.testing.assert_array_equal(tissue_mask(labels, 1, 0.0), indicator)
    np.testing.assert_allclose(tissue_mask(labels, 1, 1.0), ndimage.gaussian_filter(indicator, 1.0), atol=1e-7)


def test_eq2_on_a_tiny_array_with_clipping():
    x_text = np.array([0.5, 0.9, 0.2, 0.4], dtype=np.float32)
    mask = np.array([1.0, 1.0, 0.5, 0.0], dtype=np.float32)
    tissue = np.array([1.0, 1.0, 0.5, 1.0], dtype=np.float32)
    x_sc = apply_bias(x_text, mask, tissue, sign=1.0, alpha_bias=0.3)
    # 0.5 + 0.3; 0.9 + 0.3 clipped to 1; 0.2 + 0.3·0.5·0.5; outside the mask unchanged
    np.testing.assert_allclose(x_sc, [0.8, 1.0, 0.275, 0.4], rtol=0, atol=1e-7)
    assert effective_bias(x_sc, x_text) == pytest.approx(0.3, abs=1e-7)
    down = apply_bias(x_text, mask, tissue, sign=-1.0, alpha_bias=0.3)
    np.testing.assert_allclose(down, [0.2, 0.6, 0.125, 0.4], rtol=0, atol=1e-7)


def test_effective_bias_is_what_survives_clipping():
    x_text = np.array([0.9, 0.95, 0.0], dtype=np.float32)
    mask = np.array([1.0, 1.0, 0.0], dtype=np.float32)
    x_sc = apply_bias(x_text, mask, 1.0, sign=1.0, alpha_bias=0.5)
    np.testing.assert_allclose(x_sc, [1.0, 1.0, 0.0])
    assert effective_bias(x_sc, x_text) == pytest.approx(0.1, abs=1e-6)  # not the nominal 0.5
    # A negative bias on a dark pixel is cut at 0.
    x_sc = apply_bias(np.array([0.05], np.float32), np.ones(1, np.float32), 1.0, sign=-1.0, alpha_bias=0.5)
    assert x_sc[0] == 0.0 and effective_bias(x_sc, np.array([0.05], np.float32)) == pytest.approx(0.05)
