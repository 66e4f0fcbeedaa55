import numpy as np
import pytest

from disyre_v2.training.augmentation import build_augmentation
from disyre_v2.training.data_loader import SliceDataLoader, crop_or_pad
from disyre_v2.training.data_pipeline import build_batch_generator, num_augmentation_workers

AUGMENTATION = {
    "mirror_probability": 0.5, "rotation_probability": 0.1, "rotation_deg": 15.0,
    "scale_probability": 0.1, "scale_range": [0.75, 1.25], "elastic_probability": 0.1,
    "brightness_probability": 0.15, "brightness_range": [0.9, 1.1],
    "gamma_probability": 0.15, "gamma_range": [0.5, 2.0],
    "noise_probability": 0.15, "noise_sigma_max": 0.05,
    "blur_probability": 0.15, "blur_sigma_range": [0.5, 1.5],
}


@pytest.fixture
def data_folder(tmp_path):
    """Three preprocessed cases (C=2, Z=6, Y=40, X=24) with a box of brain on slices 1..4."""
    rng = np.random.default_rng(0)
    for i in range(3):
        mask = np.zeros((6, 40, 24), bool)
        mask[1:5, 5:35, 4:20] = True
        image = (rng.random((2, 6, 40, 24)) * 0.8 + 0.1).astype(np.float32) * mask
        image[0, :, 5:35, 4:20] += i  # case identity readable from channel 0
        np.save(tmp_path / f"case{i}.npy", image)
        np.save(tmp_path / f"case{i}_mask.npy", mask)
    return tmp_path


def test_crop_or_pad_centres_small_and_crops_large():
    rng = np.random.default_rng(0)
    image = np.arange(2 * 3 * 10, dtype=np.float32).reshape(2, 3, 10)
    mask = np.ones((3, 10), bool)
    out, out_mask = crop_or_pad(image, mask, (7, 4), rng)
    assert out.shape == (2, 7, 4)
    # Rows: 3 -> 7 padded by 2 before; columns: a random window of 4 out of 10.
    assert out_mask[:2].sum() == 0 and out_mask[2:5].all() and out_mask[5:].sum() == 0
    start = int(out[0, 2, 0])
    np.testing.assert_array_equal(out[0, 2:5], image[0, :, start:start + 4])


def test_batch_composition_and_brain_slices_only(data_folder):
    loader = SliceDataLoader(data_folder, ["case0", "case1", "case2"], (32, 32), n_volumes=2, n_slices=5, seed=3)
    batch = next(loader)
    assert batch["data"].shape == (10, 2, 32, 32) and batch["data"].dtype == np.float32
    assert batch["seg"].shape == (10, 1, 32, 32)
    assert all(1 <= z <= 4 for _, z in batch["keys"])
    # The brain box of 30 x 16 pixels is smaller than the patch: centred, 1 row and 8 columns before it.
    assert batch["seg"][:, 0, 1:31, 8:24].all() and batch["seg"].sum() == 10 * 30 * 16
    assert (batch["data"] * (batch["seg"] == 0)).max() == 0
    # Two volumes, five slices each: the case identity is constant within each block of five.
    identity = np.floor(batch["data"][:, 0][batch["seg"][:, 0] > 0].reshape(10, -1).max(1))
    assert len(set(identity[:5])) == 1 and len(set(identity[5:])) == 1


def test_same_seed_same_batches_other_seed_or_worker_other_batches(data_folder):
    cases = ["case0", "case1", "case2"]
    a = SliceDataLoader(data_folder, cases, (32, 32), 2, 4, seed=1)
    b = SliceDataLoader(data_folder, cases, (32, 32), 2, 4, seed=1)
    c = SliceDataLoader(data_folder, cases, (32, 32), 2, 4, seed=2)
    batches_a, batches_b, batches_c = [next(a) for _ in range(3)], [next(b) for _ in range(3)], [next(c) for _ in range(3)]
    for x, y in zip(batches_a, batches_b):
        np.testing.assert_array_equal(x["data"], y["data"])
        assert x["keys"] == y["keys"] and x["seed"] == y["seed"]
    assert any(x["keys"] != z["keys"] for x, z in zip(batches_a, batches_c))
    worker = SliceDataLoader(data_folder, cases, (32, 32), 2, 4, seed=1)
    worker.set_thread_id(1)
    assert [next(worker)["seed"] for _ in range(3)] != [x["seed"] for x in batches_a]


def test_missing_preprocessed_file_is_named(data_folder):
    with pytest.raises(FileNotFoundError, match=r"case9\.npy is missing: run disyre_v2_plan_and_preprocess"):
        SliceDataLoader(data_folder, ["case0", "case9"], (32, 32), 1, 1)


def test_augmented_batches_keep_background_zero_and_range(data_folder):
    loader = SliceDataLoader(data_folder, ["case0"], (32, 32), 1, 16, seed=0)
    aug = dict(AUGMENTATION, **{k: 1.0 for k in AUGMENTATION if k.endswith("probability")})
    generator = build_batch_generator(loader, build_augmentation(aug, (32, 32)), num_workers=0)
    batch = next(generator)
    assert set(batch) >= {"data", "mask", "keys"} and "seg" not in batch
    assert (batch["data"][np.broadcast_to(batch["mask"] == 0, batch["data"].shape)] == 0).all()
    assert batch["data"].min() >= 0 and batch["data"].max() <= 1


def test_blur_is_drawn_per_sample_with_one_sigma_for_every_channel():
    from batchgenerators.transforms.abstract_transforms import Compose

    from disyre_v2.training.augmentation import BatchSeededCompose

    only_blur = {k: (0.0 if k.endswith("probability") else v) for k, v in AUGMENTATION.items()}
    only_blur["blur_probability"] = 0.15
    rng = np.random.default_rng(3)
    channel = rng.random((2000, 1, 16, 16)).astype(np.float32)
    data = np.concatenate([channel, channel], axis=1)  # two identical channels
    mask = np.ones((2000, 1, 16, 16), np.uint8)
    out = BatchSeededCompose([Compose(build_augmentation(only_blur, (16, 16)))])(data=data.copy(), seg=mask, seed=1)
    blurred = np.array([not np.array_equal(out["data"][i], data[i]) for i in range(len(data))])
    assert blurred.mean() == pytest.approx(0.15, abs=0.025)  # per sample, not 1 - 0.85² per channel pair
    np.testing.assert_array_equal(out["data"][:, 0], out["data"][:, 1])  # one σ for both channels


def test_worker_pipeline_is_reproducible(data_folder):
    def run():
        loader = SliceDataLoader(data_folder, ["case0", "case1", "case2"], (32, 32), 2, 3, seed=5)
        generator = build_batch_generator(loader, build_augmentation(AUGMENTATION, (32, 32)), num_workers=2,
                                          deterministic=True)
        batches = [next(generator) for _ in range(4)]
        generator._finish()
        return batches

    first, second = run(), run()
    for x, y in zip(first, second):
        np.testing.assert_array_equal(x["data"], y["data"])
    # The two workers draw different streams.
    assert first[0]["keys"] != first[1]["keys"]


def test_worker_count_from_environment(monkeypatch):
    monkeypatch.setenv("DISYRE_n_proc_DA", "0")
    assert num_augmentation_workers() == 0
    monkeypatch.setenv("DISYRE_n_proc_DA", "three")
    with pytest.raises(ValueError, match="DISYRE_n_proc_DA='three' is not an integer"):
        num_augmentation_workers()
    monkeypatch.delenv("DISYRE_n_proc_DA")
    assert num_augmentation_workers() >= 1


def test_every_slice_with_brain_is_sampled_as_the_predictor_scores_them_all(tmp_path):
    mask = np.zeros((8, 40, 24), bool)
    mask[1:5, 5:35, 4:20] = True  # 480 pixels per slice
    mask[0, 10, 10] = True  # a 1-pixel edge slice
    mask[5, 10:20, 5:9] = True  # 40 pixels
    np.save(tmp_path / "c.npy", mask[None].astype(np.float32) * 0.5)
    np.save(tmp_path / "c_mask.npy", mask)
    loader = SliceDataLoader(tmp_path, ["c"], (32, 32), 1, 300, seed=0)
    assert {z for _, z in next(loader)["keys"]} == {0, 1, 2, 3, 4, 5}  # slices 6, 7 hold no brain
