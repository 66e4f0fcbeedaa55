import numpy as np
import pytest
from scipy import ndimage

from disyre_v2.training.spatial_augmentation import BatchedSpatialTransform, elastic_displacement


def smooth_batch(batch=6, channels=2, size=48, seed=0):
    rng = np.random.default_rng(seed)
    data = ndimage.gaussian_filter(rng.random((batch, channels, size, size)), sigma=(0, 0, 3, 3)).astype(np.float32)
    seg = np.zeros((batch, 1, size, size), np.float32)
    seg[:, :, 10:38, 12:40] = 1
    return data, seg


def transform(rotation=0.0, scale=0.0, elastic=0.0, seed=0):
    t = BatchedSpatialTransform(rotation, 15.0, scale, (0.75, 1.25), elastic)
    t.reseed(seed)
    return t


def test_samples_that_draw_nothing_are_returned_untouched():
    data, seg = smooth_batch()
    out = transform()(data=data, seg=seg)
    assert out["data"] is data and out["seg"] is seg


def test_rotation_and_scaling_coordinates_are_rigid_rotations_and_uniform_zooms():
    centred = np.stack(np.meshgrid(np.arange(32) - 15.5, np.arange(32) - 15.5, indexing="ij"))
    radius = np.hypot(*centred)
    rotated = transform(rotation=1.0).draw(20, (32, 32))
    assert sorted(rotated) == list(range(20))
    for coords in rotated.values():
        np.testing.assert_allclose(np.hypot(*coords), radius, atol=1e-9)  # distances kept
        angle = np.arctan2(coords[1, 0, 31], coords[0, 0, 31]) - np.arctan2(centred[1, 0, 31], centred[0, 0, 31])
        assert abs(np.rad2deg((angle + np.pi) % (2 * np.pi) - np.pi)) <= 15.0 + 1e-9
    for coords in transform(scale=1.0).draw(20, (32, 32)).values():
        zoom = coords / np.where(centred == 0, np.nan, centred)
        assert np.nanstd(zoom) < 1e-9 and 0.75 <= np.nanmean(zoom) <= 1.25


def test_interpolation_matches_a_cubic_resampling_at_the_drawn_coordinates():
    data, seg = smooth_batch()
    t = transform(rotation=1.0, scale=1.0, seed=3)
    coordinates = transform(rotation=1.0, scale=1.0, seed=3).draw(len(data), data.shape[2:])
    out = t(data=data.copy(), seg=seg.copy())
    centre = (np.array(data.shape[2:]) - 1) / 2.0
    inner = (slice(12, 36), slice(12, 36))  # away from the zero padding of out-of-patch points
    for index, coords in coordinates.items():
        points = coords + centre[:, None, None]
        for channel in range(data.shape[1]):
            expected = ndimage.map_coordinates(data[index, channel], points, order=3, mode="constant", cval=0.0)
            np.testing.assert_allclose(out["data"][index, channel][inner], expected[inner], atol=2e-3)
        nearest = ndimage.map_coordinates(seg[index, 0], points, order=0, mode="constant", cval=0.0)
        assert np.mean(out["seg"][index, 0] != nearest) < 0.01  # ties at exactly .5 may round either way
    assert set(np.unique(out["seg"])) <= {0.0, 1.0}


def test_same_seed_same_batch_other_seed_other_batch():
    data, seg = smooth_batch()
    a = transform(0.5, 0.5, 0.5, seed=1)(data=data.copy(), seg=seg.copy())
    b = transform(0.5, 0.5, 0.5, seed=1)(data=data.copy(), seg=seg.copy())
    c = transform(0.5, 0.5, 0.5, seed=2)(data=data.copy(), seg=seg.copy())
    assert np.array_equal(a["data"], b["data"]) and np.array_equal(a["seg"], b["seg"])
    assert not np.array_equal(a["data"], c["data"])


def test_each_transform_is_drawn_with_its_probability():
    t = transform(rotation=0.1, scale=0.1, elastic=0.1, seed=5)
    drawn = sum(len(t.draw(100, (8, 8))) for _ in range(40))
    assert drawn / 4000 == pytest.approx(1 - 0.9 ** 3, abs=0.03)


def test_coarse_elastic_field_has_the_amplitude_and_smoothness_of_the_full_resolution_one():
    rng = np.random.default_rng(0)
    ours = np.stack([elastic_displacement((128, 128), 100.0, 11.0, rng) for _ in range(60)])
    reference = np.stack([
        ndimage.gaussian_filter(rng.uniform(-1, 1, (128, 128)), 11.0, mode="constant", cval=0.0) * 100.0
        for _ in range(120)]).reshape(60, 2, 128, 128)
    centre = (slice(None), slice(None), slice(32, 96), slice(32, 96))
    assert np.std(ours[centre]) / np.std(reference[centre]) == pytest.approx(1.0, abs=0.2)
    # Smoothness: neighbouring pixels move together as much in both.
    def step(field):
        return np.std(np.diff(field[centre], axis=-1)) / np.std(field[centre])
    assert step(ours) == pytest.approx(step(reference), rel=0.35)


@pytest.mark.parametrize("probability", [0.0, 0.2, 0.5, 0.8, 1.0])
def test_each_in_plane_axis_is_mirrored_with_the_planned_probability_and_batches_are_reproducible(probability):
    from disyre_v2.training.augmentation import AxisMirrorTransform, BatchSeededCompose

    original = np.arange(6 * 7, dtype=np.float32).reshape(1, 1, 6, 7)  # every flip is recognisable
    compose = BatchSeededCompose([AxisMirrorTransform(probability)])

    def flips(seed: int) -> np.ndarray:
        batch = compose(data=np.repeat(original, 50, axis=0), seg=np.repeat(original, 50, axis=0), seed=seed)
        data, seg = batch["data"][:, 0], batch["seg"][:, 0]
        assert np.array_equal(data, seg)  # image and brain mask are flipped together
        rows = np.array([np.array_equal(d, original[0, 0][::-1]) or np.array_equal(d, original[0, 0][::-1, ::-1])
                         for d in data])
        columns = np.array([np.array_equal(d, original[0, 0][:, ::-1]) or np.array_equal(d, original[0, 0][::-1, ::-1])
                            for d in data])
        return np.stack([rows, columns])

    drawn = np.concatenate([flips(seed) for seed in range(40)], axis=1)  # 2000 samples
    assert drawn.mean(axis=1) == pytest.approx([probability, probability], abs=0.03)
    both = (drawn[0] & drawn[1]).mean()  # the two axes are drawn independently
    assert both == pytest.approx(probability ** 2, abs=0.03)
    assert np.array_equal(flips(7), flips(7))
