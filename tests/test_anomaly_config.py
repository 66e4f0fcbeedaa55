"""The synthesis parameters come from plans.json (method_numbers.md ("Anomaly synthesis"), PLANS_SCHEMA anomaly_synthesis)."""
import pytest

from disyre_v2.training.anomalies import MODES, AnomalySynthesisConfig, AnomalySynthesisConfigError

CENTROIDS = [[0.1, 0.3, 0.5, 0.7, 0.9]]


def plans_entry(patch_size: int = 128, **overrides) -> dict:
    """The ``anomaly_synthesis`` dict the planner writes, sizes scaled by P/128."""
    scale = patch_size / 128
    entry = {
        "mode": "dag",
        "canvas_size": patch_size // 2,
        "shape_probabilities": {"rectangle": 0.3333333, "disc": 0.3333333, "irregular": 0.3333334},
        "shape_size_range": [round(10 * scale), round(44 * scale)],
        "irregular_rotation_deg": 15.0,
        "irregular_extent_range": [10.0 * scale, 80.0 * scale],
        "rectangle_rotation_probability": 0.5,
        "irregular_zoom_range": [1.0, 2.0],
        "irregular_library_size": 64,
        "blur_probability": 0.7,
        "blur_sigma_range": [0.0, 5.0 * scale],
        "alpha_text_range": [0.0, 1.0],
        "alpha_bias_range": [0.0, 1.0],
        "tissue_sigma": 1.0,
        "foreign_patch_cache_size": 512,
        "anomaly_probability": 1.0,
        "restrict_to_brain": True,
        "min_brain_fraction": 0.25,
    }
    entry.update(overrides)
    return entry


def test_from_plans_reads_every_key():
    config = AnomalySynthesisConfig.from_plans(plans_entry(), CENTROIDS)
    assert config.mode == "dag" and config.canvas_size == 64
    assert config.shape_size_range == (10, 44)
    assert config.irregular_zoom_range == (1.0, 2.0)
    assert config.blur_probability == 0.7 and config.blur_sigma_range == (0.0, 5.0)
    assert config.tissue_centroids == ((0.1, 0.3, 0.5, 0.7, 0.9),)
    assert config.shape_kinds == ("rectangle", "disc", "irregular")
    assert sum(config.shape_weights) == pytest.approx(1.0, abs=1e-12)


def test_to_dict_round_trips_the_plans_entry():
    entry = plans_entry(64)
    back = AnomalySynthesisConfig.from_plans(entry, CENTROIDS).to_dict()
    assert back.keys() == entry.keys()
    for key, value in entry.items():
        if key == "shape_probabilities":
            assert back[key] == pytest.approx(value, abs=1e-6)
        else:
            assert back[key] == value, key


def test_plans_without_anomaly_probability_corrupt_every_sample():
    entry = plans_entry()
    for key in ("anomaly_probability", "restrict_to_brain", "irregular_extent_range", "rectangle_rotation_probability"):
        del entry[key]  # plans written before the keys existed
    config = AnomalySynthesisConfig.from_plans(entry, CENTROIDS)
    assert config.anomaly_probability == 1.0 and config.restrict_to_brain is True
    assert config.irregular_extent_range is None and config.rectangle_rotation_probability == 0.0
    with pytest.raises(AnomalySynthesisConfigError, match="anomaly_probability"):
        AnomalySynthesisConfig.from_plans(plans_entry(anomaly_probability=1.5), CENTROIDS)


def test_mode_override_and_with_mode():
    config = AnomalySynthesisConfig.from_plans(plans_entry(), CENTROIDS, mode="fpi")
    assert config.mode == "fpi" and not config.spec.rescale and not config.spec.bias
    assert config.with_mode("bias_only").spec == MODES["bias_only"]


@pytest.mark.parametrize(
    "entry, centroids, fragment",
    [
        ({k: v for k, v in plans_entry().items() if k != "tissue_sigma"}, CENTROIDS, "tissue_sigma"),
        (plans_entry(extra=1), CENTROIDS, "unknown key"),
        (plans_entry(mode="dagg"), CENTROIDS, "choose one of dag, fpi"),
        (plans_entry(shape_probabilities={"rectangle": 0.5, "disc": 0.2}), CENTROIDS, "summing to 1"),
        (plans_entry(shape_probabilities={"square": 1.0}), CENTROIDS, "shape_probabilities"),
        (plans_entry(shape_size_range=[10, 80]), CENTROIDS, "shape_size_range"),
        (plans_entry(alpha_text_range=[0.5, 0.2]), CENTROIDS, "alpha_text_range"),
        (plans_entry(blur_probability=1.5), CENTROIDS, "blur_probability"),
        (plans_entry(), [], "tissue_centroids is empty"),
        (plans_entry(), [[0.5, 0.1]], "ascending"),
    ],
)
def test_bad_entries_name_the_key_and_the_fix(entry, centroids, fragment):
    with pytest.raises(AnomalySynthesisConfigError) as info:
        AnomalySynthesisConfig.from_plans(entry, centroids)
    message = str(info.value)
    assert fragment in message and "plans.json" in message


def test_modes_without_tissue_clusters_need_no_centroids():
    for mode in ("fpi", "texture_only", "dag_no_tissue", "none"):
        assert AnomalySynthesisConfig.from_plans(plans_entry(mode=mode), None).tissue_centroids == ()
