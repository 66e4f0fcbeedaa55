import numpy as np
import pytest
import torch

from disyre_v2.training.schedule import SeverityScheduler


def test_alpha_table_matches_method():
    schedule = SeverityScheduler()
    expected = {0: 0.0045, 25: 0.0508, 50: 0.2724, 75: 0.7266, 99: 0.9995}
    for level, value in expected.items():
        assert schedule.alpha(level) == pytest.approx(value, abs=1e-4)
    assert np.all(np.diff(schedule.alphas) > 0)


def test_alpha_is_sqrt_cumprod_reversed():
    schedule = SeverityScheduler(num_levels=3, beta_start=0.1, beta_end=0.3)
    # betas 0.1, 0.2, 0.3 -> cumprod 0.9, 0.72, 0.504 -> s = sqrt; alpha(t) = s[2 - t]
    np.testing.assert_allclose(schedule.alphas, np.sqrt([0.504, 0.72, 0.9]))


def test_inverse_of_the_table_levels():
    schedule = SeverityScheduler()
    levels = [0, 25, 50, 75, 99]
    assert list(schedule.level_of(schedule.alpha(levels))) == levels
    assert schedule.level_of(0.0) == 0
    assert schedule.level_of(1.0) == 99
    # Nearest level: halfway between alpha(50) and alpha(51) rounds to the nearer one.
    a50, a51 = schedule.alpha(50), schedule.alpha(51)
    assert schedule.level_of(a50 + 0.4 * (a51 - a50)) == 50
    assert schedule.level_of(a50 + 0.6 * (a51 - a50)) == 51


def test_restoration_step_formula():
    schedule = SeverityScheduler()
    x_t = torch.tensor([0.9, 0.1, 0.5])
    x0 = torch.tensor([0.5, 0.5, 0.5])
    ratio = schedule.alpha(50) / schedule.alpha(75)
    expected = torch.clamp(x0 + ratio * (x_t - x0), 0, 1)
    torch.testing.assert_close(schedule.restoration_step(x_t, x0, 75, 50), expected)
    with pytest.raises(ValueError):
        schedule.restoration_step(x_t, x0, 50, 75)


def test_config_round_trip(tmp_path):
    schedule = SeverityScheduler(num_levels=50, beta_start=0.002, beta_end=0.1)
    schedule.save(tmp_path)
    loaded = SeverityScheduler.load(tmp_path)
    assert loaded.to_dict() == {"num_levels": 50, "beta_start": 0.002, "beta_end": 0.1}
    np.testing.assert_array_equal(loaded.alphas, schedule.alphas)


def test_invalid_levels_and_config():
    with pytest.raises(ValueError):
        SeverityScheduler().alpha(100)
    with pytest.raises(ValueError):
        SeverityScheduler(beta_start=0.3, beta_end=0.2)
