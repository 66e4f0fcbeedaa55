import numpy as np
import pytest
import torch

from disyre_v2.inference.scores import (
    ensemble_score,
    multistep_levels,
    multistep_score,
    singlestep_score,
    unconditional_score,
)
from disyre_v2.inference.sliding_window import gaussian_importance_map, sliding_window_scores, window_starts
from disyre_v2.training.schedule import SeverityScheduler


def identity(x, t):
    return x.clone()


def test_gaussian_importance_map_values():
    weights = gaussian_importance_map((16, 16), 0.125, 1e-3)
    assert weights.shape == (16, 16) and weights.dtype == torch.float32
    # Peak 1 at the centre (the two central pixels are 0.5 px from it); σ = 2 px.
    assert float(weights.max()) == pytest.approx(1.0)
    expected = np.exp(-0.5 * ((7.5 / 2) ** 2 + (0.5 / 2) ** 2)) / np.exp(-0.5 * 2 * (0.5 / 2) ** 2)
    assert float(weights[0, 7]) == pytest.approx(max(expected, 1e-3), rel=1e-5)
    assert float(weights.min()) == pytest.approx(1e-3)  # corners clamped


def test_window_starts_cover_with_quarter_steps():
    assert window_starts(64, 64, 0.25) == [0]
    starts = window_starts(100, 64, 0.25)
    assert starts[0] == 0 and starts[-1] == 36 and max(np.diff(starts)) <= 16
    with pytest.raises(ValueError):
        window_starts(10, 16, 0.25)


def test_identity_network_gives_zero_map():
    rng = torch.Generator().manual_seed(0)
    slices = torch.rand((3, 2, 40, 50), generator=rng)
    brain = torch.ones((3, 40, 50), dtype=torch.bool)
    scores, restoration = sliding_window_scores(slices, brain, ensemble_score(identity, [0, 25, 50, 75]), (32, 32),
                                                with_restoration=True)
    assert scores.shape == (3, 40, 50)
    assert float(scores.abs().max()) == 0.0
    torch.testing.assert_close(restoration, slices)


def test_constant_network_on_constant_image():
    c, value = 0.7, 0.2
    slices = torch.full((2, 1, 48, 40), value)
    brain = torch.ones((2, 48, 40), dtype=torch.bool)
    constant = lambda x, t: torch.full_like(x, c)  # noqa: E731
    scores, _ = sliding_window_scores(slices, brain, singlestep_score(constant, 30), (32, 32))
    torch.testing.assert_close(scores, torch.full_like(scores, abs(c - value)))


def test_foreground_fraction_weighting_and_skipped_windows():
    slices = torch.full((1, 1, 64, 64), 0.5)
    brain = torch.zeros((1, 64, 64), dtype=torch.bool)
    brain[0, 0:16, 0:16] = True  # brain only in the corner
    calls = []

    def score(windows):
        calls.append(windows.shape[0])
        return torch.ones(windows.shape[0], 32, 32), None

    scores, _ = sliding_window_scores(slices, brain, score, (32, 32), step_fraction=0.5, batch_windows=100)
    # Windows start at 0, 16, 32 on each axis: only those covering the corner (starts 0) hold brain.
    assert calls == [1]
    weights = gaussian_importance_map((32, 32))
    fraction = 16 * 16 / (32 * 32)
    denominator = torch.zeros(64, 64)
    for y in (0, 16, 32):
        for x in (0, 16, 32):
            denominator[y:y + 32, x:x + 32] += weights
    expected = torch.zeros(64, 64)
    expected[:32, :32] = weights * fraction
    torch.testing.assert_close(scores[0], expected / denominator)
    assert float(scores[0, 40:, 40:].abs().max()) == 0.0


def test_windows_of_all_slices_are_batched_together():
    slices = torch.rand((5, 1, 32, 48))
    brain = torch.ones((5, 32, 48), dtype=torch.bool)
    sizes = []

    def score(windows):
        sizes.append(windows.shape[0])
        return torch.zeros(windows.shape[0], 32, 32), None

    sliding_window_scores(slices, brain, score, (32, 32), batch_windows=8)
    # 5 slices x 3 windows (x starts 0, 8, 16) = 15 windows in batches of 8.
    assert sizes == [8, 7]


def test_small_slices_are_padded_and_cropped_back():
    slices = torch.full((2, 1, 20, 24), 0.3)
    brain = torch.ones((2, 20, 24), dtype=torch.bool)
    seen = []

    def score(windows):
        seen.append(windows)
        return (windows[:, 0] - 0.3).abs(), windows

    scores, restoration = sliding_window_scores(slices, brain, score, (32, 32), with_restoration=True)
    assert scores.shape == (2, 20, 24) and restoration.shape == (2, 1, 20, 24)
    window = seen[0][0, 0]
    assert float(window[6:26, 4:28].min()) == pytest.approx(0.3) and float(window[:6].abs().max()) == 0.0
    torch.testing.assert_close(restoration, slices)


def toy_network(x, t):
    """Depends on t and on x, differently per level: x·(1 − t/200) + t/1000."""
    if t is None:
        return x * 0.5
    factor = (1 - t.float() / 200).view(-1, 1, 1, 1)
    return x * factor + (t.float() / 1000).view(-1, 1, 1, 1)


def test_ensemble_is_mean_of_single_steps():
    slices = torch.rand((2, 2, 32, 40))
    brain = torch.ones((2, 32, 40), dtype=torch.bool)
    ensemble, _ = sliding_window_scores(slices, brain, ensemble_score(toy_network, [0, 25, 50, 75]), (32, 32))
    singles = [sliding_window_scores(slices, brain, singlestep_score(toy_network, t), (32, 32))[0] for t in (0, 25, 50, 75)]
    torch.testing.assert_close(ensemble, torch.stack(singles).mean(0))
    # And a single step equals |P(x, t) - x| averaged over channels.
    expected = (toy_network(slices, torch.full((2,), 50)) - slices).abs().mean(1)
    torch.testing.assert_close(singles[2], expected)


def test_multistep_matches_hand_computed_recurrence():
    scheduler = SeverityScheduler()
    x = torch.rand((3, 1, 8, 8))
    assert multistep_levels(100, 25) == [99, 74, 49, 24]
    scores, last = multistep_score(toy_network, scheduler, 25)(x)
    x_t, total = x.clone(), torch.zeros(3, 8, 8)
    for t, t_next in ((99, 74), (74, 49), (49, 24), (24, 0)):
        x0 = x_t * (1 - t / 200) + t / 1000
        total += (x_t - x0).abs()[:, 0]
        a = scheduler.alphas
        x_t = torch.clamp(x0 + (a[t_next] / a[t]) * (x_t - x0), 0, 1)
    torch.testing.assert_close(scores, total / 4)
    torch.testing.assert_close(last, x0)


def test_unconditional_score():
    x = torch.rand((2, 1, 8, 8))
    scores, restored = unconditional_score(toy_network)(x)
    torch.testing.assert_close(scores, (x * 0.5 - x).abs()[:, 0])


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="need slices"):
        sliding_window_scores(torch.zeros(2, 1, 8, 8), torch.zeros(2, 8, 9, dtype=torch.bool), None, (8, 8))


def reference_blend(slices, brain, score_fn, patch, step_fraction=0.25, weights=None):
    """The definition, one window at a time: Σ w·f·AS / Σ w and the w·f-weighted mean restoration."""
    from disyre_v2.inference.sliding_window import pad_to_patch

    padded, crop = pad_to_patch(slices, patch)
    padded_brain, _ = pad_to_patch(brain.float(), patch)
    n, c, h, w = padded.shape
    weights = gaussian_importance_map(patch) if weights is None else weights
    num, den = torch.zeros((n, h, w)), torch.zeros((h, w))
    rest, rest_w = torch.zeros((n, c, h, w)), torch.zeros((n, h, w))
    for y in window_starts(h, patch[0], step_fraction):
        for x in window_starts(w, patch[1], step_fraction):
            den[y:y + patch[0], x:x + patch[1]] += weights
            for i in range(n):
                f = padded_brain[i, y:y + patch[0], x:x + patch[1]].mean()
                if f == 0:
                    continue
                scores, restored = score_fn(padded[i:i + 1, :, y:y + patch[0], x:x + patch[1]])
                num[i, y:y + patch[0], x:x + patch[1]] += weights * f * scores[0]
                rest[i, :, y:y + patch[0], x:x + patch[1]] += weights * f * restored[0]
                rest_w[i, y:y + patch[0], x:x + patch[1]] += weights * f
    return (num / den)[:, crop[0], crop[1]], (rest / rest_w.clamp_min(1e-12)[:, None])[:, :, crop[0], crop[1]]


@pytest.mark.parametrize("batch_windows, fixed_batch", [(1, False), (7, False), (7, True), (1000, False)])
def test_batched_gather_and_scatter_equal_the_window_by_window_definition(batch_windows, fixed_batch):
    generator = torch.Generator().manual_seed(3)
    slices = torch.rand((4, 2, 37, 45), generator=generator)
    brain = torch.zeros((4, 37, 45), dtype=torch.bool)
    brain[:, 5:30, 8:40] = True
    brain[0] = False  # a slice without brain
    brain[3, :, :] = False
    brain[3, 10:14, 20:23] = True  # a speck: windows with a small f
    slices = slices * brain[:, None]

    def network(x, t):  # content- and level-dependent, so every window differs
        return torch.nn.functional.avg_pool2d(x, 3, 1, 1) * (1 + t.float().view(-1, 1, 1, 1) / 200) + 0.01

    score_fn = ensemble_score(network, [0, 25, 50, 75])
    expected_scores, expected_restoration = reference_blend(slices, brain, score_fn, (16, 16))
    scores, restoration = sliding_window_scores(slices, brain, score_fn, (16, 16), batch_windows=batch_windows,
                                                with_restoration=True, fixed_batch=fixed_batch)
    torch.testing.assert_close(scores, expected_scores, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(restoration, expected_restoration, atol=1e-5, rtol=1e-5)
