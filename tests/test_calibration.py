"""Calibration on healthy scores: exact thresholds, p-values, warnings, files and their refusals."""
from __future__ import annotations

import json

import numpy as np
import pytest

from disyre_v2.errors import UserError
from disyre_v2.inference.calibration import (
    Calibration,
    calibration_path,
    calibration_warnings,
    exceedance_thresholds,
    find_calibration,
    load_calibration,
    rate_grid,
    volume_p_value,
)

SETTINGS = {"model": "DisyreTrainer__DisyrePlans__2d_small", "folds": ["0"], "seeds": [0], "score": "ensemble",
            "levels": [0, 25, 50, 75], "tile_step": 0.25, "median_filter": 3, "precision": "fp32"}


def test_exceedance_thresholds_are_exact_order_statistics():
    values = np.arange(1000, dtype=np.float32)  # 0 .. 999
    thresholds = exceedance_thresholds(values, [1e-3, 1e-2, 0.1, 0.5])
    # rate r allows floor(r·1000) values strictly above: 1, 10, 100, 500
    assert thresholds.tolist() == [998.0, 989.0, 899.0, 499.0]
    for rate, threshold in zip([1e-3, 1e-2, 0.1, 0.5], thresholds):
        assert np.count_nonzero(values > threshold) == int(rate * 1000)


def test_thresholds_with_ties_never_exceed_the_rate():
    values = np.array([0, 0, 0, 1, 1, 1, 1, 5, 5, 9], np.float32)
    thresholds = exceedance_thresholds(values, [0.1, 0.2, 0.3, 0.45])
    assert thresholds.tolist() == [5.0, 5.0, 1.0, 1.0]
    for rate, threshold in zip([0.1, 0.2, 0.3, 0.45], thresholds):
        assert np.count_nonzero(values > threshold) / values.size <= rate


def test_rate_grid_holds_each_decade_exactly():
    grid = rate_grid()
    for rate in (1e-5, 1e-4, 1e-3, 1e-2, 1e-1):
        assert rate in grid.tolist()
    assert grid[0] == 1e-6 and grid[-1] == 0.5 and np.all(np.diff(grid) > 0)


def test_voxel_threshold_takes_the_largest_tabulated_rate_not_above_the_request():
    values = np.random.default_rng(0).random(200_000).astype(np.float32)
    calibration = Calibration.from_healthy(SETTINGS, values, [1.0] * 5, [f"c{i}" for i in range(5)], "test")
    exact = exceedance_thresholds(values, [1e-3])[0]
    assert calibration.voxel_threshold(1e-3) == exact
    between = calibration.voxel_threshold(1.03e-3)  # between two grid rates: the lower one (1e-3)
    assert between == exact
    assert np.count_nonzero(values > calibration.voxel_threshold(2e-3)) / values.size <= 2e-3
    with pytest.raises(UserError, match="below the calibration's smallest rate"):
        calibration.voxel_threshold(1e-7)


def test_volume_p_value_by_hand():
    healthy = [0.1, 0.2, 0.3, 0.4]
    assert volume_p_value(healthy, 0.5) == pytest.approx(1 / 5)
    assert volume_p_value(healthy, 0.3) == pytest.approx(3 / 5)  # 0.3 and 0.4 are >= 0.3
    assert volume_p_value(healthy, 0.0) == pytest.approx(1.0)


def test_warnings_give_the_figures():
    assert calibration_warnings(100_000, 5, 1e-3) == []
    voxels, volumes = calibration_warnings(9_999, 4, 1e-3)
    assert "10,000" in voxels and "9,999" in voxels
    assert "4 healthy volume" in volumes


def test_save_load_and_find_by_settings(tmp_path):
    values = np.linspace(0, 1, 10_001, dtype=np.float32)
    calibration = Calibration.from_healthy(SETTINGS, values, [0.2, 0.3, 0.1, 0.5, 0.4], list("abcde"), "folds")
    path = calibration.save(calibration_path(tmp_path, SETTINGS))
    loaded = load_calibration(path)
    assert loaded.voxel_threshold(1e-2) == calibration.voxel_threshold(1e-2)
    assert loaded.volume_scores == [0.2, 0.3, 0.1, 0.5, 0.4] and loaded.num_voxels == 10_001
    assert find_calibration(tmp_path, SETTINGS).cases == list("abcde")
    other = {**SETTINGS, "median_filter": 0}
    with pytest.raises(UserError, match=r"median_filter: calibrated 3, now 0"):
        find_calibration(tmp_path, other)


def test_missing_damaged_and_foreign_calibrations_are_refused(tmp_path):
    with pytest.raises(UserError, match="has none"):
        find_calibration(tmp_path, SETTINGS)
    path = calibration_path(tmp_path, SETTINGS)
    path.parent.mkdir(parents=True)
    path.write_text('{"format": "disyre_v2.calibration", "vers')
    with pytest.raises(UserError, match="damaged"):
        load_calibration(path)
    path.write_text(json.dumps({"hello": 1}))
    with pytest.raises(UserError, match="not a disyre_v2 calibration"):
        load_calibration(path)
    path.write_text(json.dumps({"format": "disyre_v2.calibration", "version": 99}))
    with pytest.raises(UserError, match="version 99"):
        load_calibration(path)
    path.write_text(json.dumps({"format": "disyre_v2.calibration", "version": 1, "settings": {}}))
    with pytest.raises(UserError, match="incomplete"):
        load_calibration(path)
