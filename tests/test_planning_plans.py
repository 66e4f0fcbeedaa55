"""Planner and plans access: documentation/explanation/method_numbers.md numbers, spacing and patch rules, scaling, clear errors."""
import json

import numpy as np
import pytest

from disyre_v2.planning import defaults as D
from disyre_v2.planning.planner import fit_patch_and_depth, plan, scaled_anomaly_synthesis
from disyre_v2.planning.plans import (
    REQUIRED_CONFIGURATION_KEYS,
    PlansError,
    get_configuration,
    load_plans,
    save_plans,
)

# method_numbers.md ("Anomaly synthesis"), as printed there (not the constant the plans are built from): mirror each in-plane axis
# p 0.5; rotation ±15° p 0.1; scale 0.75–1.25 p 0.1; elastic p 0.1; brightness ×0.9–1.1 p 0.15; gamma
# 0.5–2 p 0.15; Gaussian noise σ ~ U(0, 0.05) p 0.15; Gaussian blur σ ~ U(0.5, 1.5) p 0.15.
METHOD_AUGMENTATION = {
    "mirror_probability": 0.5,
    "rotation_probability": 0.1, "rotation_deg": 15.0,
    "scale_probability": 0.1, "scale_range": [0.75, 1.25],
    "elastic_probability": 0.1,
    "brightness_probability": 0.15, "brightness_range": [0.9, 1.1],
    "gamma_probability": 0.15, "gamma_range": [0.5, 2.0],
    "noise_probability": 0.15, "noise_sigma_max": 0.05,
    "blur_probability": 0.15, "blur_sigma_range": [0.5, 1.5],
}
CENTROIDS = {"0": [0.1, 0.3, 0.5, 0.7, 0.95], "1": [0.2, 0.4, 0.6, 0.8, 0.99]}


def fake_fingerprint(shapes, spacings, channels=("T1", "T2")):
    """A fingerprint as extract_fingerprint writes it, for given cropped shapes and spacings."""
    cases = [{"case_id": f"c{i}", "spacing": list(sp), "shape": list(sh), "shape_after_crop": list(sh)}
             for i, (sh, sp) in enumerate(zip(shapes, spacings))]
    return {
        "dataset_name": "Dataset001_Fake",
        "channel_names": {str(i): c for i, c in enumerate(channels)},
        "num_training_cases": len(cases),
        "case_ids": [c["case_id"] for c in cases],
        "cases": cases,
        "median_spacing": [float(v) for v in np.median(spacings, axis=0)],
        "median_shape_after_crop": [float(v) for v in np.median(shapes, axis=0)],
        "tissue_clusters": {"num_clusters": 5, "seed": 1, "normalization": dict(D.NORMALIZATION),
                            "channels": {k: {"centroids": v, "voxel_shares": [0.2] * 5}
                                         for k, v in list(CENTROIDS.items())[: len(channels)]}},
    }


# SRI24-like registered data: 1 mm isotropic, brains about 140 x 170 x 140 voxels.
SRI24 = fake_fingerprint([(140, 172, 140), (138, 168, 136), (142, 170, 144)], [(1.0, 1.0, 1.0)] * 3)


def test_paper_configuration_2d_has_the_numbers_of_the_method():
    plans = plan(SRI24, ["2d"])
    config = get_configuration(plans, "2d")
    assert plans["plans_name"] == "DisyrePlans" and plans["dataset_name"] == "Dataset001_Fake"
    assert plans["original_median_spacing"] == [1.0, 1.0, 1.0]
    assert plans["original_median_shape"] == [140.0, 170.0, 140.0]
    assert config["spacing"] == [1.0, 1.0, 1.0] and config["resample"] is False
    assert config["slice_axis"] == 0
    assert config["patch_size"] == [128, 128]
    assert config["batch"] == {"n_volumes": 8, "n_slices": 12}
    assert config["normalization"] == {"percentile": 98.0, "domain": "brain", "clip": [0.0, 1.0]}
    net = config["network"]
    assert net["class_name"] == "DisyreUNet"
    assert net["kwargs"] == {
        "in_channels": 2, "out_channels": 2, "widths": [32, 64, 96, 128, 256, 256],
        "num_res_blocks_down": 2, "num_res_blocks_up": 3, "attention_levels": [4], "mid_attention": True,
        "attention_head_dim": 8, "norm_groups": 32, "time_embed_dim": 32, "time_hidden_dim": 128,
        "conditional": True,
    }
    assert config["schedule"] == {"num_levels": 100, "beta_start": 0.001, "beta_end": 0.2}
    synthesis = config["anomaly_synthesis"]
    assert synthesis["mode"] == "dag" and synthesis["canvas_size"] == 64
    assert synthesis["shape_size_range"] == [10, 44] and synthesis["blur_sigma_range"] == [0.0, 5.0]
    assert synthesis["blur_probability"] == 0.7 and synthesis["tissue_sigma"] == 1.0
    # The reference's shape distribution and foreign-patch cache (issue 11: fidelity).
    assert synthesis["irregular_extent_range"] == [10.0, 80.0] and synthesis["rectangle_rotation_probability"] == 0.5
    assert synthesis["foreign_patch_cache_size"] == 512 and synthesis["min_brain_fraction"] == 0.25
    assert synthesis["restrict_to_brain"] is True
    assert sum(synthesis["shape_probabilities"].values()) == pytest.approx(1.0)
    assert config["tissue_centroids"] == [CENTROIDS["0"], CENTROIDS["1"]]
    assert config["training"] == {"lr": 1e-4, "betas": [0.95, 0.999], "weight_decay": 1e-6, "warmup_steps": 500,
                                  "num_steps": 100000, "grad_clip": 1.0, "ema_decay": None}
    assert config["inference"] == {"ensemble_levels": [0, 25, 50, 75], "tile_step": 0.25,
                                   "gaussian_sigma_scale": 0.125, "gaussian_min": 0.001,
                                   "foreground_weighting": True, "median_filter_size": 0}
    assert config["augmentation"] == METHOD_AUGMENTATION
    assert config["notes"] == []
    assert set(REQUIRED_CONFIGURATION_KEYS) <= set(config)


def test_cpu_configuration_2d_small_resamples_to_2mm_and_scales_synthesis_by_half():
    config = get_configuration(plan(SRI24, ["2d_small"]), "2d_small")
    assert config["spacing"] == [2.0, 2.0, 2.0] and config["resample"] is True
    assert config["median_shape"] == [70.0, 85.0, 70.0]
    assert config["patch_size"] == [64, 64]
    assert config["network"]["kwargs"]["widths"] == [16, 32, 64, 128]
    assert config["network"]["kwargs"]["attention_levels"] == [3]
    assert config["network"]["kwargs"]["norm_groups"] == 8
    assert config["batch"] == {"n_volumes": 4, "n_slices": 8}
    assert config["training"]["lr"] == 1e-3 and config["training"]["warmup_steps"] == 200
    synthesis = config["anomaly_synthesis"]
    assert synthesis["canvas_size"] == 32
    assert synthesis["shape_size_range"] == [5, 22]
    assert synthesis["blur_sigma_range"] == [0.0, 2.5]
    assert synthesis["tissue_sigma"] == 0.5
    # Measured deviations (documentation/explanation/ablation.md): no augmentation at the CPU
    # budget, the same parameters with every probability 0; a 3-voxel median filter of the map.
    augmentation = config["augmentation"]
    assert augmentation == {k: (0.0 if k.endswith("_probability") else v) for k, v in METHOD_AUGMENTATION.items()}
    assert config["inference"]["median_filter_size"] == 3


def test_2d_small_keeps_axes_that_are_already_2mm_or_coarser():
    anisotropic = fake_fingerprint([(50, 170, 140)] * 3, [(1.0, 1.0, 3.0)] * 3)
    assert get_configuration(plan(anisotropic, ["2d_small"]), "2d_small")["spacing"] == [2.0, 2.0, 3.0]
    coarse = fake_fingerprint([(60, 70, 60)] * 3, [(2.5, 2.5, 2.5)] * 3)
    config = get_configuration(plan(coarse, ["2d_small"]), "2d_small")
    assert config["spacing"] == [2.5, 2.5, 2.5] and config["resample"] is False


def test_2d_resamples_only_when_training_spacings_differ():
    mixed = fake_fingerprint([(140, 170, 140)] * 3, [(1.0, 1.0, 1.0), (1.0, 1.0, 1.0), (1.2, 1.2, 1.2)])
    config = get_configuration(plan(mixed, ["2d"]), "2d")
    assert config["spacing"] == [1.0, 1.0, 1.0] and config["resample"] is True


def test_patch_never_exceeds_the_median_slice_rounded_down_to_2_to_the_depth():
    # Median slice 100 x 90 voxels; the 2d network has 5 downsamplings (multiples of 32).
    narrow = fake_fingerprint([(60, 100, 90)] * 3, [(1.0, 1.0, 1.0)] * 3)
    config = get_configuration(plan(narrow, ["2d"]), "2d")
    assert config["patch_size"] == [96, 64]
    assert config["anomaly_synthesis"]["canvas_size"] == 32  # C = min(P)/2
    assert config["network"]["kwargs"]["widths"] == [32, 64, 96, 128, 256, 256]
    assert any("patch reduced" in note for note in config["notes"])


def test_slices_smaller_than_2_to_the_depth_drop_the_deepest_levels():
    patch, widths, attention = fit_patch_and_depth([18, 16], 128, [32, 64, 96, 128, 256, 256], [4])
    assert widths == [32, 64, 96, 128, 256] and patch == [16, 16] and attention == [4]
    patch, widths, attention = fit_patch_and_depth([15.5, 9], 64, [16, 32, 64, 128, 256], [4])
    assert widths == [16, 32, 64, 128] and patch == [8, 8] and attention == [3]
    patch, widths, attention = fit_patch_and_depth([12, 30], 64, [16, 32, 64, 128], [3])
    assert widths == [16, 32, 64, 128] and patch == [8, 24]
    # Below 8 px the anomaly canvas (P/2) would be smaller than 4 px.
    with pytest.raises(PlansError, match="median brain slice is 9x7 voxels at this spacing, smaller than the smallest patch of 8 px"):
        fit_patch_and_depth([9, 7], 64, [16, 32, 64, 128], [3])


def test_scaled_synthesis_sizes_are_integers_within_the_canvas():
    for patch in (8, 16, 48, 96, 128):
        synthesis = scaled_anomaly_synthesis(patch)
        lo, hi = synthesis["shape_size_range"]
        assert isinstance(lo, int) and isinstance(hi, int)
        assert 1 <= lo <= hi <= synthesis["canvas_size"] == patch // 2


def test_plans_round_trip_and_clear_errors(tmp_path):
    plans = plan(SRI24, ["2d", "2d_small"])
    save_plans(plans, tmp_path)
    assert load_plans(tmp_path / "plans.json") == json.loads(json.dumps(plans))
    assert load_plans(tmp_path)["configurations"].keys() == {"2d", "2d_small"}
    with pytest.raises(PlansError, match=r"'3d' is not in the plans of Dataset001_Fake \(available: 2d, 2d_small\)"):
        get_configuration(plans, "3d")
    with pytest.raises(PlansError, match="does not exist. Plan the dataset first: disyre_v2_plan_and_preprocess"):
        load_plans(tmp_path / "missing" / "plans.json")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(PlansError, match="broken.json is not valid JSON"):
        load_plans(tmp_path / "broken.json")
    del plans["configurations"]["2d"]["tissue_centroids"]
    with pytest.raises(PlansError, match="'2d' of Dataset001_Fake lacks tissue_centroids"):
        get_configuration(plans, "2d")


def test_unknown_configuration_cannot_be_planned():
    with pytest.raises(PlansError, match="Unknown configuration '3d'; available: 2d, 2d_small"):
        plan(SRI24, ["3d"])


def test_a_brain_too_small_for_a_configuration_is_refused_naming_it():
    tiny = fake_fingerprint([(14, 14, 12)] * 3, [(1.0, 1.0, 1.0)] * 3)
    assert get_configuration(plan(tiny, ["2d"]), "2d")["patch_size"] == [8, 8]
    with pytest.raises(PlansError, match=r"Configuration 2d_small \(\[2.0, 2.0, 2.0\] mm\) of Dataset001_Fake: "
                                         r"The median brain slice is 7x6 voxels"):
        plan(tiny, ["2d_small"])


@pytest.mark.parametrize("value", [-0.1, 1.5, "0.5", None, True, float("nan")])
def test_an_augmentation_probability_outside_0_1_is_refused_when_the_plans_are_loaded(tmp_path, value):
    plans = plan(SRI24, ["2d", "2d_small"])
    plans["configurations"]["2d_small"]["augmentation"]["mirror_probability"] = value
    path = tmp_path / "plans.json"
    path.write_text(json.dumps(plans))
    with pytest.raises(PlansError, match=r"augmentation mirror_probability of configuration '2d_small' is .*, not a "
                                         r"probability in \[0, 1\] \(.*plans\.json\) — set it between 0 and 1"):
        load_plans(path)
    plans["configurations"]["2d_small"]["augmentation"]["mirror_probability"] = 0.2  # any probability is honoured
    path.write_text(json.dumps(plans))
    assert load_plans(path)["configurations"]["2d_small"]["augmentation"]["mirror_probability"] == 0.2
