"""DAG and its variants on batches (method_numbers.md ("Anomaly synthesis")): modes, t = B⁻¹(max α), background, channels."""
import numpy as np
import pytest
from scipy import ndimage

from disyre_v2.training.anomalies import AnomalySynthesisConfig, AnomalySynthesizer
from disyre_v2.training.schedule import SeverityScheduler
from tests.test_anomaly_config import plans_entry

P = 32
SCHEDULE = SeverityScheduler()


def brain_disc(p=P, radius=13.0):
    yy, xx = np.mgrid[:p, :p]
    return (yy - p / 2) ** 2 + (xx - p / 2) ** 2 <= radius ** 2


def make_batch(batch=6, channels=1, seed=0, brain=None):
    """Smooth random 'anatomy' in [0.05, 0.95] on the brain, exactly 0 on background."""
    rng = np.random.default_rng(seed)
    brain = brain_disc() if brain is None else brain
    smooth = ndimage.gaussian_filter(rng.random((batch, channels, P, P)), (0, 0, 2, 2))
    low, high = smooth.min(axis=(2, 3), keepdims=True), smooth.max(axis=(2, 3), keepdims=True)
    data = (0.05 + 0.9 * (smooth - low) / (high - low)) * brain
    mask = np.broadcast_to(brain, (batch, 1, P, P)).astype(np.uint8)
    return data.astype(np.float32), mask


def synthesizer(mode="dag", centroids=((0.2, 0.4, 0.6, 0.8),), seed=0, **overrides):
    entry = plans_entry(P, mode=mode, irregular_library_size=8, **overrides)
    return AnomalySynthesizer(AnomalySynthesisConfig.from_plans(entry, centroids), seed=seed)


def support_of(result, i):
    return result.anomaly_mask[i, 0] > 0


def test_level_is_the_inverse_schedule_of_the_largest_alpha():
    data, mask = make_batch(16, channels=2, seed=1)
    result = synthesizer(centroids=((0.2, 0.5, 0.8), (0.3, 0.7)))(data, mask)
    severity = np.maximum(result.alpha_text, result.alpha_bias.max(axis=1))
    np.testing.assert_array_equal(result.level, SCHEDULE.level_of(severity))
    assert result.level.dtype == np.int64 and result.level.shape == (16,)
    assert len(np.unique(result.level)) > 3


def test_effective_bias_is_the_largest_change_per_channel_in_bias_only():
    data, mask = make_batch(12, channels=2, seed=2)
    result = synthesizer("bias_only", centroids=((0.2, 0.5, 0.8), (0.3, 0.7)))(data, mask)
    change = np.abs(result.corrupted - result.target).max(axis=(2, 3))
    np.testing.assert_allclose(result.alpha_bias, change, atol=1e-6)
    assert np.all(result.alpha_text == 0)
    np.testing.assert_array_equal(result.level, SCHEDULE.level_of(result.alpha_bias.max(axis=1)))


@pytest.mark.parametrize("mode", ["dag", "fpi", "texture_only", "bias_only", "dag_no_tissue", "none"])
def test_mask_and_output_are_zero_on_background(mode):
    data, mask = make_batch(8, seed=3)
    result = synthesizer(mode)(data, mask)
    background = ~brain_disc()
    assert np.all(result.anomaly_mask[:, 0, background] == 0)
    assert np.all(result.corrupted[:, :, background] == 0)
    assert result.anomaly_mask.min() >= 0 and result.anomaly_mask.max() <= 1
    assert result.corrupted.min() >= 0 and result.corrupted.max() <= 1
    # Nothing changes outside the anomaly mask.
    outside = np.broadcast_to(result.anomaly_mask == 0, data.shape)
    np.testing.assert_array_equal(result.corrupted[outside], data[outside])
    np.testing.assert_array_equal(result.target, data)


def test_empty_mask_gives_level_zero_and_the_input_unchanged():
    data, mask = make_batch(4, seed=4)
    mask[1] = 0
    data[1] = 0  # no brain at all in sample 1: its anomaly mask is empty
    result = synthesizer(blur_probability=0.0)(data, mask)
    assert result.level[1] == 0 and result.alpha_text[1] == 0 and np.all(result.alpha_bias[1] == 0)
    assert not result.anomaly_mask[1].any()
    np.testing.assert_array_equal(result.corrupted[1], data[1])
    assert np.all(result.level[[0, 2, 3]] > 0)


def test_none_returns_the_input():
    data, mask = make_batch(4, seed=5)
    result = synthesizer("none")(data, mask)
    np.testing.assert_array_equal(result.corrupted, data)
    assert not result.level.any() and not result.anomaly_mask.any()
    assert not result.alpha_text.any() and not result.alpha_bias.any()


def two_level_batch():
    """Whole-patch brain; sample 0 dark (0.10–0.20), sample 1 bright (0.80–0.90)."""
    brain = np.ones((P, P), bool)
    rng = np.random.default_rng(6)
    data = np.stack([rng.uniform(0.1, 0.2, (1, P, P)), rng.uniform(0.8, 0.9, (1, P, P))]).astype(np.float32)
    return data, np.broadcast_to(brain, (2, 1, P, P)).astype(np.uint8)


def test_fpi_pastes_the_foreign_patch_without_rescaling_and_t_from_alpha_text():
    data, mask = two_level_batch()
    result = synthesizer("fpi", blur_probability=0.0, alpha_text_range=[1.0, 1.0])(data, mask)
    for i, other in ((0, 1), (1, 0)):
        pasted = result.corrupted[i, 0][support_of(result, i)]
        # α_text = 1 and a binary mask: the foreign patch itself, from the other sample's range.
        assert pasted.min() >= data[other].min() and pasted.max() <= data[other].max()
    assert not result.alpha_bias.any()
    np.testing.assert_array_equal(result.level, SCHEDULE.level_of(result.alpha_text))
    assert np.all(result.level == 99)


def test_texture_only_rescales_the_foreign_patch_to_the_targets_range():
    data, mask = two_level_batch()
    result = synthesizer("texture_only", blur_probability=0.0, alpha_text_range=[1.0, 1.0])(data, mask)
    for i in range(2):
        support = support_of(result, i)
        pasted, original = result.corrupted[i, 0][support], data[i, 0][support]
        assert pasted.min() == pytest.approx(original.min(), abs=1e-6)
        assert pasted.max() == pytest.approx(original.max(), abs=1e-6)
        assert not np.allclose(pasted, original)  # but the texture is foreign
    assert not result.alpha_bias.any()


def test_texture_only_stays_within_the_targets_range_with_soft_masks():
    data, mask = make_batch(10, seed=7)
    result = synthesizer("texture_only", blur_probability=1.0)(data, mask)
    for i in range(10):
        support = support_of(result, i)
        if support.any():
            x = data[i, 0][support]
            assert result.corrupted[i, 0][support].min() >= x.min() - 1e-6
            assert result.corrupted[i, 0][support].max() <= x.max() + 1e-6
    np.testing.assert_array_equal(result.level, SCHEDULE.level_of(result.alpha_text))


def test_dag_no_tissue_shifts_the_whole_mask():
    data = np.full((6, 1, P, P), 0.5, np.float32) * brain_disc()
    mask = np.broadcast_to(brain_disc(), (6, 1, P, P)).astype(np.uint8)
    result = synthesizer("dag_no_tissue", blur_probability=0.0, alpha_text_range=[0.0, 0.0],
                         alpha_bias_range=[0.25, 0.25])(data, mask)
    for i in range(6):
        change = (result.corrupted[i, 0] - data[i, 0])[support_of(result, i)]
        assert np.allclose(np.abs(change), 0.25, atol=1e-6) and len(np.unique(np.sign(change))) == 1
    np.testing.assert_allclose(result.alpha_bias, 0.25, atol=1e-6)


def test_dag_shifts_only_one_tissue_cluster():
    # Stripes of two tissues (0.3 and 0.7) and tissue_sigma 0: the bias hits one of them only.
    stripes = np.where(np.arange(P) % 4 < 2, 0.3, 0.7)[None, :] * np.ones((P, 1))
    data = np.broadcast_to(stripes * brain_disc(), (8, 1, P, P)).astype(np.float32)
    mask = np.broadcast_to(brain_disc(), (8, 1, P, P)).astype(np.uint8)
    result = synthesizer("bias_only", centroids=((0.3, 0.7),), tissue_sigma=0.0, blur_probability=0.0,
                         alpha_bias_range=[0.2, 0.2])(data, mask)
    for i in range(8):
        changed = np.abs(result.corrupted[i, 0] - data[i, 0]) > 1e-6
        assert changed.any() and len(np.unique(data[i, 0][changed])) == 1
        tissue = data[i, 0] == data[i, 0][changed][0]
        np.testing.assert_array_equal(changed, support_of(result, i) & tissue)


def test_dag_quantises_the_textured_image():
    # Horizontal stripes receive vertical ones (and back) at α_text = 1: the tissue cluster of eq. (2)
    # is read from x_text, so every biased pixel has the same x_text value.
    stripes = np.where(np.arange(P) % 4 < 2, 0.2, 0.8)[None, :] * np.ones((P, 1))
    data = np.stack([stripes, stripes.T] * 3)[:, None].astype(np.float32)
    mask = np.ones((6, 1, P, P), np.uint8)
    result = synthesizer("dag", centroids=((0.2, 0.8),), tissue_sigma=0.0, blur_probability=0.0,
                         shape_size_range=[8, 12], alpha_text_range=[1.0, 1.0],
                         alpha_bias_range=[0.1, 0.1])(data, mask)
    for i in range(6):
        out = result.corrupted[i, 0][support_of(result, i)]
        biased = out[~(np.isclose(out, 0.2) | np.isclose(out, 0.8))]
        assert biased.size and np.allclose(biased, biased[0], atol=1e-6)
        assert np.isclose(np.abs(out - 0.2), 0.1).any() or np.isclose(np.abs(out - 0.8), 0.1).any()


def test_smoothed_tissue_bias_equals_the_whole_slice_computation():
    # The synthesiser computes m_tissue on the canvas plus a margin; it must match eq. (2) on the slice.
    data, mask = make_batch(8, seed=8)
    centroids = (0.2, 0.4, 0.6, 0.8)
    result = synthesizer("bias_only", centroids=(centroids,), alpha_bias_range=[0.3, 0.3])(data, mask)
    labels = np.searchsorted([0.3, 0.5, 0.7], data[:, 0], side="left")
    for i in range(8):
        m = result.anomaly_mask[i, 0]
        tissues = [ndimage.gaussian_filter((labels[i] == k).astype(np.float32), 1.0) for k in range(4)]
        candidates = [np.clip(data[i, 0] + sign * 0.3 * m * tissue, 0, 1)
                      for tissue in tissues for sign in (1.0, -1.0)]
        assert any(np.allclose(result.corrupted[i, 0], c, atol=1e-6) for c in candidates)


def test_channels_share_the_mask_but_not_the_sign():
    data, mask = make_batch(40, channels=2, seed=9)
    result = synthesizer("bias_only", centroids=((0.2, 0.5, 0.8), (0.3, 0.7)), blur_probability=0.0,
                         alpha_bias_range=[0.2, 0.2])(data, mask)
    same_sign = []
    for i in range(40):
        delta = result.corrupted[i] - data[i]
        changed = np.abs(delta) > 1e-6
        assert not (changed & ~support_of(result, i)).any()  # both channels inside the one mask
        signs = [np.sign(delta[c][changed[c]].sum()) for c in range(2) if changed[c].any()]
        if len(signs) == 2:
            same_sign.append(signs[0] == signs[1])
    assert any(same_sign) and not all(same_sign)


def test_channels_share_the_foreign_patch_location():
    # Channel 1 is channel 0 scaled by 0.5: one location and α for both keeps that relation.
    data, mask = make_batch(6, seed=10)
    data = np.concatenate([data, 0.5 * data], axis=1)
    result = synthesizer("fpi")(data, mask)
    np.testing.assert_allclose(result.corrupted[:, 1], 0.5 * result.corrupted[:, 0], atol=1e-6)


def test_same_seed_same_batches():
    data, mask = make_batch(6, seed=11)
    a, b, c = synthesizer(seed=3), synthesizer(seed=3), synthesizer(seed=4)
    for _ in range(2):  # the second batch also draws from the cache
        ra, rb, rc = a(data, mask), b(data, mask), c(data, mask)
        np.testing.assert_array_equal(ra.corrupted, rb.corrupted)
        np.testing.assert_array_equal(ra.level, rb.level)
        np.testing.assert_array_equal(ra.anomaly_mask, rb.anomaly_mask)
    assert not np.array_equal(ra.corrupted, rc.corrupted)


@pytest.mark.parametrize(
    "data_shape, mask_shape, fragment",
    [((2, 1, P, P), (2, P, P), "'mask' must be"), ((2, P, P), (2, 1, P, P), "'data' must be"),
     ((2, 1, P, P), (2, 1, P, P + 2), "'mask' must be"),
     ((2, 2, P, P), (2, 1, P, P), "tissue_centroids has 1")],
)
def test_bad_batches_are_rejected_with_a_clear_message(data_shape, mask_shape, fragment):
    with pytest.raises(ValueError, match=fragment):
        synthesizer()(np.zeros(data_shape, np.float32), np.ones(mask_shape, np.uint8))


def test_rectangular_patches_keep_the_canvas_inside():
    brain = np.ones((20, 40), bool)
    data = np.full((6, 1, 20, 40), 0.5, np.float32)
    result = synthesizer("dag_no_tissue")(data, np.broadcast_to(brain, (6, 1, 20, 40)).astype(np.uint8))
    assert result.corrupted.shape == (6, 1, 20, 40) and result.anomaly_mask[:, 0].any(axis=(1, 2)).all()


def test_unnormalised_data_is_rejected():
    data, mask = make_batch(2)
    with pytest.raises(ValueError, match=r"normalised to \[0, 1\]"):
        synthesizer()(data * 3, mask)


def test_clean_samples_keep_their_input_and_level():
    data, brain = make_batch(batch=400, seed=3)
    full = synthesizer(seed=11)(data, brain)
    half = synthesizer(seed=11, anomaly_probability=0.5)(data, brain)
    # The same draws: every level is the one the sample drew, corrupted or not.
    assert np.array_equal(full.level, half.level)
    clean = np.array([np.array_equal(half.corrupted[i], data[i]) and not half.anomaly_mask[i].any()
                      for i in range(len(data))])
    corrupted = ~clean
    assert np.array_equal(half.corrupted[corrupted], full.corrupted[corrupted])
    assert 0.4 < clean.mean() < 0.6  # about 1 - anomaly_probability
    # Levels carry no information about cleanliness: the same distribution in both groups.
    assert abs(np.median(half.level[clean]) - np.median(half.level[corrupted])) <= 10
    assert np.array_equal(half.target, data)


def test_anomalies_may_reach_across_the_brain_boundary_when_asked():
    small_brain = brain_disc(radius=7.0)  # every canvas (16 px) overlaps the background
    data, mask = make_batch(40, seed=4, brain=small_brain)
    result = synthesizer(seed=5, restrict_to_brain=False)(data, mask)
    background = ~small_brain
    assert (result.anomaly_mask[:, 0, background] > 0).any()
    assert (result.corrupted[:, :, background] > 0).any()  # the input's background is touched
    assert np.all(result.target[:, :, background] == 0)  # the target never is


def test_samples_with_too_little_brain_for_the_canvas_stay_clean_at_level_zero():
    data, mask = make_batch(6, seed=6)
    tiny = np.zeros((P, P), bool)
    tiny[10:17, 10:19] = True  # 63 px: under a quarter of the 16x16 canvas (64 px)
    data[3:] *= tiny
    mask = mask.copy()
    mask[3:, 0] = tiny
    result = synthesizer(seed=8)(data, mask)
    np.testing.assert_array_equal(result.corrupted[3:], data[3:])
    assert not result.anomaly_mask[3:].any() and (result.level[3:] == 0).all()
    assert result.anomaly_mask[:3].any(axis=(1, 2, 3)).all() and (result.level[:3] > 0).all()
    # With the fraction at 0 the same tiny brains are corrupted (the earlier behaviour).
    loose = synthesizer(seed=8, min_brain_fraction=0.0)(data, mask)
    assert loose.anomaly_mask[3:].any()
