import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from disyre_v2.evaluation.protocol_disyre import DisyreProtocol, brain_bounding_box, sample_box, case_generator
from disyre_v2.evaluation.protocol_upd import UpdProtocol, centre_square, resize_slices, upd_slices
from disyre_v2.evaluation.protocols import ExactProtocol, make_protocol


def strict_dice_sweep(scores, labels, thresholds):
    """The published protocols' [Dice]: the best of 2·TP/(predicted + P) with score > t."""
    best = (-1.0, None)
    for t in thresholds:
        predicted = scores > t
        dice = 2 * np.sum(predicted & labels) / (predicted.sum() + labels.sum())
        if dice > best[0]:
            best = (dice, t)
    return best


def toy_volume(seed, shape=(30, 40, 36)):
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    brain = z**2 + y**2 + (x / 0.8) ** 2 < 0.8
    label = ((z - 0.1) ** 2 + (y + 0.2) ** 2 + x**2 < 0.08) & brain
    score_map = ((rng.gamma(2.0, 0.08, shape) + 0.4 * label * rng.random(shape)) * brain).astype(np.float32)
    return score_map, label, brain


def test_bounding_box_of_the_brain():
    brain = np.zeros((5, 6, 7), bool)
    brain[1, 2, 3] = brain[3, 4, 5] = True
    assert brain_bounding_box(brain) == (slice(1, 4), slice(2, 5), slice(3, 6))
    with pytest.raises(ValueError, match="empty"):
        brain_bounding_box(np.zeros((2, 2, 2), bool))


def test_disyre_sampling_is_seeded_inside_the_box_and_independent_of_case_order():
    score_map, label, brain = toy_volume(0)
    box = brain_bounding_box(brain)
    index_map = np.arange(score_map.size, dtype=np.float32).reshape(score_map.shape)  # each voxel its own value
    first, _ = sample_box(index_map, label, brain, case_generator(3, "a"), n=500)
    again, _ = sample_box(index_map, label, brain, case_generator(3, "a"), n=500)
    other, _ = sample_box(index_map, label, brain, case_generator(4, "a"), n=500)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    inside = np.isin(first, index_map[box])
    assert inside.all()  # with replacement, background voxels of the box included
    assert (~brain.ravel()[first.astype(int)]).any()

    volumes = {f"case{i}": toy_volume(i) for i in range(3)}
    forward, backward = DisyreProtocol(seed=1), DisyreProtocol(seed=1)
    for case_id in volumes:
        forward.add(case_id, *volumes[case_id])
    for case_id in reversed(list(volumes)):
        backward.add(case_id, *volumes[case_id])
    f_scores, _ = forward.samples()
    b_scores, _ = backward.samples()
    n = forward.samples_per_volume
    np.testing.assert_array_equal(f_scores[:n], b_scores[-n:])  # case0's draw does not depend on its position
    assert f_scores.size == 3 * 10_000


def test_disyre_result_against_brute_force():
    protocol = DisyreProtocol(seed=0, samples_per_volume=2000)
    for i in range(3):
        protocol.add(f"c{i}", *toy_volume(i))
    scores, labels = protocol.samples()
    result = protocol.result()
    assert result["average_precision"] == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    thresholds = np.linspace(scores.min(), max(1.0, scores.max()), 200)
    dice, threshold = strict_dice_sweep(scores, labels, thresholds)
    assert result["best_dice"] == pytest.approx(dice, abs=1e-12) and result["best_threshold"] == pytest.approx(threshold)
    assert (result["n_positive"], result["n_negative"]) == (labels.sum(), (~labels).sum())


def test_upd_resize_matches_scikit_image():
    skimage_transform = pytest.importorskip("skimage.transform")
    rng = np.random.default_rng(0)
    for shape in [(3, 240, 240), (2, 197, 197), (2, 60, 60)]:
        volume = rng.random(shape).astype(np.float32)
        expected = skimage_transform.resize(volume, (shape[0], 128, 128))
        np.testing.assert_allclose(resize_slices(volume, 128), expected, atol=1e-6)


def test_upd_slices_range_brain_slices_and_square_crop():
    score_map = np.zeros((40, 60, 50), np.float32)
    score_map[:, 5:55, :] = 1.0  # the centre 50 rows
    label = np.zeros_like(score_map, bool)
    label[20, 20:40, 15:35] = True
    brain = np.zeros_like(label)
    brain[10:31, 10:50, 5:45] = True  # brain in slices 10..30
    assert centre_square(score_map).shape == (40, 50, 50)
    scores, labels = upd_slices(score_map, label, brain)
    assert scores.shape == labels.shape == (16, 128, 128)  # slices 15..30
    np.testing.assert_allclose(scores, 1.0)  # the crop removed the zero rows
    assert labels[5].sum() == pytest.approx((20 * 128 / 50) * (20 * 128 / 50), rel=0.1)  # slice 20
    assert not labels[np.arange(16) != 5].any()


def test_upd_result_against_brute_force():
    protocol = UpdProtocol(size=32)
    pooled_scores, pooled_labels = [], []
    for i in range(3):
        volume = toy_volume(i, shape=(40, 48, 44))
        protocol.add(f"c{i}", *volume)
        scores, labels = upd_slices(*volume, size=32)
        pooled_scores.append(scores.ravel())
        pooled_labels.append(labels.ravel())
    scores, labels = np.concatenate(pooled_scores), np.concatenate(pooled_labels)
    result = protocol.result()
    assert result["n_positive"] == labels.sum() and result["n_negative"] == (~labels).sum()
    assert result["average_precision"] == pytest.approx(average_precision_score(labels, scores), abs=1e-3)
    dice, threshold = strict_dice_sweep(scores, labels, np.linspace(scores.max(), scores.min(), 100))
    assert result["best_dice"] == pytest.approx(dice, abs=1e-3)
    assert result["best_threshold"] == pytest.approx(threshold, rel=1e-6)


def test_exact_protocol_pools_brain_voxels_only():
    protocol = ExactProtocol()
    volumes = [toy_volume(i) for i in range(2)]
    for i, volume in enumerate(volumes):
        protocol.add(f"c{i}", *volume)
    scores = np.concatenate([m[b] for m, _, b in volumes])
    labels = np.concatenate([lab[b] for _, lab, b in volumes])
    result = protocol.result()
    assert result["n_positive"] + result["n_negative"] == sum(b.sum() for _, _, b in volumes)
    assert result["average_precision"] == pytest.approx(average_precision_score(labels, scores), abs=1e-3)


def test_unknown_protocol():
    with pytest.raises(ValueError, match="exact, disyre, upd"):
        make_protocol("brats")
    assert make_protocol("disyre", seed=5).seed == 5
