"""The batchgenerators interface: keys, dtypes, seeding, pickling, construction from plans.json."""
import multiprocessing
import pickle

import numpy as np
import pytest
from batchgenerators.transforms.abstract_transforms import AbstractTransform, Compose
from batchgenerators.transforms.spatial_transforms import MirrorTransform

from disyre_v2.training.anomalies import AnomalySynthesisTransform
from disyre_v2.training.schedule import SeverityScheduler
from tests.test_anomaly_config import plans_entry
from tests.test_anomaly_synthesis import P, make_batch


def configuration(mode="dag", channels=1):
    """The parts of a plans.json configuration the transform reads."""
    return {
        "anomaly_synthesis": plans_entry(P, mode=mode, irregular_library_size=8),
        "tissue_centroids": [[0.2, 0.4, 0.6, 0.8]] * channels,
        "schedule": {"num_levels": 100, "beta_start": 0.001, "beta_end": 0.2},
    }


def batch(batch_size=5, channels=2, seed=0):
    data, mask = make_batch(batch_size, channels, seed)
    return {"data": data, "mask": mask, "keys": [f"case{i}" for i in range(batch_size)]}


def test_output_keys_shapes_and_dtypes():
    transform = AnomalySynthesisTransform.from_plans(configuration(channels=2), seed=0)
    assert isinstance(transform, AbstractTransform)
    inputs = batch()
    clean = inputs["data"].copy()
    out = transform(**inputs)
    assert out["data"].shape == (5, 2, P, P) and out["data"].dtype == np.float32
    np.testing.assert_array_equal(out["target"], clean)
    assert out["t"].shape == (5,) and out["t"].dtype == np.int64
    assert out["anomaly_mask"].shape == (5, 1, P, P) and out["anomaly_mask"].dtype == np.float32
    assert out["alpha_text"].shape == (5,) and out["alpha_bias"].shape == (5, 2)
    assert out["keys"] == inputs["keys"] and out["mask"] is inputs["mask"]  # other keys pass through
    assert not np.array_equal(out["data"], clean)


def test_runs_after_augmentations_in_a_compose():
    pipeline = Compose([MirrorTransform(axes=(0, 1), label_key="mask"),
                        AnomalySynthesisTransform.from_plans(configuration(channels=2), seed=1)])
    out = pipeline(**batch())
    assert {"data", "target", "t", "anomaly_mask", "alpha_text", "alpha_bias"} <= out.keys()
    # The anomaly mask is zero wherever the (mirrored) brain mask is.
    assert not (out["anomaly_mask"] * (out["mask"] == 0)).any()


def test_same_seed_same_outputs_different_seed_different():
    runs = []
    for seed in (7, 7, 8):
        transform = AnomalySynthesisTransform.from_plans(configuration(channels=2), seed=seed)
        runs.append([transform(**batch(seed=s)) for s in (0, 1)])
    for first, second in zip(runs[0], runs[1]):
        for key in ("data", "t", "anomaly_mask", "alpha_text", "alpha_bias"):
            np.testing.assert_array_equal(first[key], second[key])
    assert not np.array_equal(runs[0][1]["data"], runs[2][1]["data"])


def test_reseed_restarts_the_stream_and_keeps_the_cache():
    first = AnomalySynthesisTransform.from_plans(configuration(channels=2), seed=7)(**batch())
    other = AnomalySynthesisTransform.from_plans(configuration(channels=2), seed=99)
    other.reseed(np.random.SeedSequence(7).spawn(1)[0])  # what a per-batch seeding loader passes
    other.reseed(7)
    np.testing.assert_array_equal(other(**batch())["data"], first["data"])
    cached = len(other.synthesizer.cache)
    other.reseed(8)
    assert cached == 5 and len(other.synthesizer.cache) == cached


def _apply(transform, inputs):
    return transform(**inputs)


def test_picklable_and_usable_in_a_worker_process():
    transform = AnomalySynthesisTransform.from_plans(configuration(channels=2), seed=3)
    twin = pickle.loads(pickle.dumps(transform))
    np.testing.assert_array_equal(twin(**batch())["data"], transform(**batch())["data"])
    # After use (library built, cache filled) it still pickles, without the blob library.
    assert len(pickle.dumps(transform)) < 200_000
    with multiprocessing.get_context("fork").Pool(1) as pool:
        in_worker = pool.apply(_apply, (transform, batch(seed=2)))
    np.testing.assert_array_equal(in_worker["data"], transform(**batch(seed=2))["data"])


def test_mode_override_and_schedule_from_plans():
    config = configuration(mode="dag")
    config["schedule"] = {"num_levels": 10, "beta_start": 0.01, "beta_end": 0.5}
    transform = AnomalySynthesisTransform.from_plans(config, seed=0, mode="fpi")
    assert transform.config.mode == "fpi"
    out = transform(**batch(channels=1))
    assert out["t"].max() <= 9
    np.testing.assert_array_equal(out["t"], SeverityScheduler(10, 0.01, 0.5).level_of(out["alpha_text"]))


def test_missing_batch_key_is_named():
    transform = AnomalySynthesisTransform.from_plans(configuration(), seed=0)
    with pytest.raises(KeyError, match="no 'mask' entry"):
        transform(data=np.zeros((1, 1, P, P), np.float32))



def test_state_dict_restores_the_foreign_patch_cache():
    """A resumed run continues exactly: same seed + restored cache = same anomalies."""
    original = AnomalySynthesisTransform.from_plans(configuration(channels=2), seed=3)
    original(**batch(seed=0))
    state = original.state_dict()
    assert tuple(state["cache_crops"].shape[:2]) == (5, 2)
    resumed = AnomalySynthesisTransform.from_plans(configuration(channels=2), seed=3)
    resumed.load_state_dict(state)
    fresh = AnomalySynthesisTransform.from_plans(configuration(channels=2), seed=3)
    for transform in (original, resumed, fresh):
        transform.reseed(11)
    expected = original(**batch(seed=1))["data"]
    np.testing.assert_array_equal(resumed(**batch(seed=1))["data"], expected)
    assert not np.array_equal(fresh(**batch(seed=1))["data"], expected)
