import numpy as np
import pytest
from sklearn.metrics import average_precision_score, precision_recall_curve

from disyre_v2.evaluation.pooled_curve import PooledPRCurve, exact_summary, float_order_key, key_to_float


def brute_force(scores, labels):
    """AP and best Dice by sweeping every distinct threshold (score >= threshold is anomalous)."""
    thresholds = np.unique(scores)[::-1]
    ap, previous_recall, best = 0.0, 0.0, (0.0, None)
    for threshold in thresholds:
        predicted = scores >= threshold
        tp = np.sum(predicted & labels)
        precision, recall = tp / predicted.sum(), tp / labels.sum()
        ap += (recall - previous_recall) * precision
        previous_recall = recall
        dice = 2 * tp / (predicted.sum() + labels.sum())
        if dice > best[0]:
            best = (dice, threshold)
    return ap, best


def test_order_key_is_monotone_and_invertible():
    values = np.array([-3.5, -0.0, 0.0, 1e-30, 0.25, 7.0, -1e-30], np.float32)
    keys = float_order_key(values)
    assert list(np.argsort(keys, kind="stable")) == list(np.argsort(values, kind="stable"))
    np.testing.assert_array_equal(key_to_float(keys), values)


def test_tiny_example_exact_values():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5], np.float32)
    labels = np.array([1, 0, 1, 0, 0], bool)
    summary = exact_summary(scores, labels)
    # Recall steps at 0.9 (P=1) and 0.7 (P=2/3): AP = 0.5·1 + 0.5·2/3.
    assert summary.average_precision == pytest.approx(0.5 + 0.5 * 2 / 3)
    # Best Dice at threshold 0.7: 2·2 / (3 + 2) = 0.8.
    assert summary.best_dice == pytest.approx(0.8) and summary.best_threshold == pytest.approx(0.7)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_against_scikit_learn_and_brute_force(seed):
    rng = np.random.default_rng(seed)
    labels = rng.random(3000) < 0.1
    scores = np.round(rng.random(3000) + 0.4 * labels, 3).astype(np.float32)  # ties included
    summary = exact_summary(scores, labels)
    assert summary.average_precision == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    ap, (dice, threshold) = brute_force(scores, labels)
    assert summary.average_precision == pytest.approx(ap, abs=1e-12)
    assert summary.best_dice == pytest.approx(dice, abs=1e-12) and summary.best_threshold == pytest.approx(threshold)
    precision, recall, _ = precision_recall_curve(labels, scores)
    assert summary.best_dice == pytest.approx(np.max(2 * precision * recall / np.maximum(precision + recall, 1e-12)))


def test_histogram_path_matches_exact_volume_by_volume():
    rng = np.random.default_rng(5)
    curve = PooledPRCurve()
    all_scores, all_labels = [], []
    for _ in range(5):
        labels = rng.random(40000) < 0.03
        scores = (rng.gamma(2.0, 0.1, 40000) + 0.2 * labels).astype(np.float32)
        curve.add(scores, labels)
        all_scores.append(scores)
        all_labels.append(labels)
    binned = curve.summary()
    exact = exact_summary(np.concatenate(all_scores), np.concatenate(all_labels))
    assert binned.n_positive == exact.n_positive and binned.n_negative == exact.n_negative
    assert binned.average_precision == pytest.approx(exact.average_precision, abs=1e-3)
    assert binned.best_dice == pytest.approx(exact.best_dice, abs=1e-3)


def test_bad_inputs():
    curve = PooledPRCurve()
    with pytest.raises(ValueError, match="differ in size"):
        curve.add(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="NaN"):
        curve.add(np.array([np.nan]), np.array([1]))
    with pytest.raises(ValueError, match="no voxel"):
        curve.summary()
    empty = exact_summary(np.array([0.1, 0.2]), np.array([0, 0]))
    assert np.isnan(empty.average_precision)


def test_add_histogram_equals_add_and_curve_points():
    from disyre_v2.evaluation.pooled_curve import bin_index

    rng = np.random.default_rng(7)
    labels = rng.random(5000) < 0.2
    scores = (rng.random(5000) + 0.5 * labels).astype(np.float32)
    direct, binned = PooledPRCurve(), PooledPRCurve()
    direct.add(scores, labels)
    bins, inverse = np.unique(bin_index(scores), return_inverse=True)
    binned.add_histogram(bins, np.bincount(inverse, labels).astype(int), np.bincount(inverse, ~labels).astype(int))
    assert binned.summary() == direct.summary()
    curve = direct.curve()
    # Recall rises to 1 at the lowest threshold; the last precision is the positive fraction.
    assert curve.recall[-1] == 1.0 and curve.precision[-1] == pytest.approx(labels.mean())
    assert np.all(np.diff(curve.thresholds) < 0) and np.all(np.diff(curve.recall) >= 0)
    with pytest.raises(ValueError, match="unique"):
        binned.add_histogram(np.array([3, 3]), np.array([1, 1]), np.array([0, 0]))


def test_counts_above_match_strict_threshold_up_to_one_bin():
    from disyre_v2.evaluation.pooled_curve import bin_lower_edge, bin_index

    rng = np.random.default_rng(8)
    labels = rng.random(20000) < 0.1
    scores = rng.random(20000).astype(np.float32)
    curve = PooledPRCurve()
    curve.add(scores, labels)
    thresholds = np.linspace(0.05, 0.95, 7)
    tp, fp, edges = curve.counts_above(thresholds)
    for t, count_tp, count_fp, edge in zip(thresholds, tp, fp, edges):
        # Exactly score >= the next bin's lower edge, which lies within one bin (2^-13 relative) above t.
        assert count_tp == np.sum(labels & (scores >= edge)) and count_fp == np.sum(~labels & (scores >= edge))
        assert t < edge <= t * (1 + 2.0**-12)
        assert abs(count_tp - np.sum(labels & (scores > t))) <= 2
    assert bin_index(bin_lower_edge(np.array([12345]))) == 12345
