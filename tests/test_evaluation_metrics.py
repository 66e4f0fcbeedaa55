import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from disyre_v2.evaluation.pooled_curve import (PooledPRCurve, best_dice_at_thresholds, bin_index, bin_lower_edge,
                                               exact_summary)
from disyre_v2.evaluation.ranking import ranking_metrics, slice_scores
from disyre_v2.inference.volume_score import top_fraction_mean, volume_score
from disyre_v2.evaluation.sparse_histogram import SparseHistogram
from disyre_v2.evaluation.summary import json_safe


def brute_force(scores, labels):
    """AP (Σ ΔR·P) and the best Dice by sweeping every distinct threshold, score >= t anomalous."""
    ap, previous_recall, best = 0.0, 0.0, (0.0, None)
    for threshold in np.unique(scores)[::-1]:
        predicted = scores >= threshold
        tp = np.sum(predicted & labels)
        recall = tp / labels.sum()
        ap += (recall - previous_recall) * tp / predicted.sum()
        previous_recall = recall
        dice = 2 * tp / (predicted.sum() + labels.sum())
        if dice > best[0]:
            best = (dice, threshold)
    return ap, best


def random_volumes(seed, n=4, size=3000):
    rng = np.random.default_rng(seed)
    volumes = []
    for _ in range(n):
        labels = rng.random(size) < rng.uniform(0.02, 0.2)
        scores = np.round(rng.gamma(2.0, 0.1, size) + 0.3 * labels * rng.random(size), 3).astype(np.float32)
        volumes.append((scores, labels))
    return volumes


@pytest.mark.parametrize("seed", [0, 1])
def test_sparse_histogram_against_scikit_learn_brute_force_and_exact(seed):
    volumes = random_volumes(seed)
    scores = np.concatenate([s for s, _ in volumes])
    labels = np.concatenate([lab for _, lab in volumes])
    merged = SparseHistogram.merge(SparseHistogram.from_scores(s, lab) for s, lab in volumes)
    summary = merged.summary()
    # Scores with 3 decimals never share a bin, so the binned curve is the exact one.
    assert summary.average_precision == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    ap, (dice, threshold) = brute_force(scores, labels)
    assert summary.average_precision == pytest.approx(ap, abs=1e-12)
    assert summary.best_dice == pytest.approx(dice, abs=1e-12)
    assert summary.best_threshold <= threshold and summary.best_threshold == pytest.approx(threshold, rel=2.0**-13)
    exact = exact_summary(scores, labels)
    assert (summary.n_positive, summary.n_negative) == (exact.n_positive, exact.n_negative)


def test_histogram_path_agrees_with_exact_for_continuous_scores():
    """Continuous scores share bins; AP and [Dice] still agree with scikit-learn to 1e-3."""
    rng = np.random.default_rng(3)
    pooled, kept, all_scores, all_labels = PooledPRCurve(), [], [], []
    for _ in range(6):
        labels = rng.random(60000) < 0.02
        scores = (rng.gamma(2.0, 0.05, 60000) + 0.15 * labels * rng.random(60000)).astype(np.float32)
        histogram = SparseHistogram.from_scores(scores, labels)
        pooled.add_histogram(histogram.bins, histogram.positives, histogram.negatives)
        kept.append(histogram)
        all_scores.append(scores)
        all_labels.append(labels)
    scores, labels = np.concatenate(all_scores), np.concatenate(all_labels)
    binned, exact = pooled.summary(), exact_summary(scores, labels)
    assert binned.average_precision == pytest.approx(average_precision_score(labels, scores), abs=1e-3)
    assert binned.best_dice == pytest.approx(exact.best_dice, abs=1e-3)
    assert binned.best_threshold == pytest.approx(exact.best_threshold, rel=1e-3)
    assert SparseHistogram.merge(kept).summary() == binned


def test_case_dice_at_the_pooled_threshold_is_exact():
    volumes = random_volumes(4, n=3)
    threshold = 0.31  # any value; the histogram resolves it to its bin's lower edge
    for scores, labels in volumes:
        histogram = SparseHistogram.from_scores(scores, labels)
        # 0.31 has more than 13 mantissa bits: its bin starts a little below it.
        edge = float(bin_lower_edge(bin_index(np.array([threshold], np.float32)))[0])
        assert 0.31 * (1 - 2.0**-13) < edge < 0.31
        predicted = scores >= edge
        tp = int(np.sum(predicted & labels))
        assert histogram.counts_at_or_above(threshold) == (tp, int(np.sum(predicted & ~labels)))
        assert histogram.dice_at(threshold) == pytest.approx(2 * tp / (predicted.sum() + labels.sum()))
    healthy = SparseHistogram.from_scores(np.array([0.1, 0.5], np.float32), np.array([0, 0]))
    assert np.isnan(healthy.dice_at(0.2)) and healthy.counts_at_or_above(0.2) == (0, 1)


def test_tiny_dice_example_at_fixed_thresholds():
    # Counts predicted anomalous at thresholds (0.9, 0.5, 0.1) with 4 anomalous voxels in all.
    dice, threshold = best_dice_at_thresholds(np.array([1, 3, 4]), np.array([0, 1, 10]), 4, np.array([0.9, 0.5, 0.1]))
    assert dice == pytest.approx(2 * 3 / (4 + 4)) and threshold == 0.5
    assert np.isnan(best_dice_at_thresholds(np.array([0]), np.array([3]), 0, np.array([0.5]))[0])


def test_volume_score_is_mean_of_top_one_percent_of_brain():
    score_map = np.zeros((2, 10, 10), np.float32)
    brain = np.zeros_like(score_map, bool)
    brain[:, 1:9, 1:9] = True  # 128 brain voxels -> ceil(1.28) = 2 voxels
    score_map[0, 4, 4], score_map[1, 2, 2], score_map[1, 3, 3] = 0.9, 0.5, 0.3
    score_map[0, 0, 0] = 5.0  # outside the brain: ignored
    assert volume_score(score_map, brain) == pytest.approx((0.9 + 0.5) / 2)
    assert top_fraction_mean(np.arange(10.0)) == 9.0  # at least one value


def test_slice_scores_use_brain_slices_only():
    score_map = np.zeros((4, 5, 5), np.float32)
    label = np.zeros((4, 5, 5), bool)
    brain = np.zeros((4, 5, 5), bool)
    brain[1:3, 1:4, 1:4] = True
    score_map[1, 2, 2], score_map[2, 1, 1], score_map[2, 0, 0] = 0.7, 0.2, 9.0  # 9.0 lies outside the brain
    label[2, 1, 1] = True
    indices, scores, anomalous = slice_scores(score_map, label, brain)
    assert indices.tolist() == [1, 2] and scores.tolist() == pytest.approx([0.7, 0.2])
    assert anomalous.tolist() == [False, True]
    with pytest.raises(ValueError, match="slice reduction"):
        slice_scores(score_map, label, brain, "mean")


def test_ranking_metrics_match_scikit_learn_and_are_undefined_for_one_class():
    scores, anomalous = [0.9, 0.2, 0.6, 0.4, 0.7], [1, 0, 0, 1, 1]
    metrics = ranking_metrics(scores, anomalous)
    assert metrics.auroc == pytest.approx(roc_auc_score(anomalous, scores))
    assert metrics.average_precision == pytest.approx(average_precision_score(anomalous, scores))
    assert (metrics.n_anomalous, metrics.n_normal) == (3, 2)
    assert ranking_metrics([0.1, 0.2], [0, 0]).auroc is None


def test_json_safe_turns_nan_into_null():
    assert json_safe({"a": float("nan"), "b": [np.float32(0.5), np.int64(3)], "c": np.bool_(True)}) == {
        "a": None, "b": [0.5, 3], "c": True}
