"""Shapes on the C×C canvas (method_numbers.md ("Anomaly synthesis")): sizes, kinds, blur, the seeded blob library, placement."""
import pickle

import numpy as np
import pytest

from disyre_v2.training.anomalies import AnomalySynthesisConfig
from disyre_v2.training.anomalies.blob_library import BlobLibrary, get_blob_library
from disyre_v2.training.anomalies.placement import canvas_window, choose_centre
from disyre_v2.training.anomalies.shapes import ShapeSampler, draw_disc, draw_irregular, draw_rectangle
from tests.test_anomaly_config import CENTROIDS, plans_entry


def extents(mask: np.ndarray) -> tuple[int, int]:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


def sampler(patch_size=128, **overrides) -> ShapeSampler:
    return ShapeSampler(AnomalySynthesisConfig.from_plans(plans_entry(patch_size, **overrides), CENTROIDS))


def test_rectangle_and_disc_have_exactly_the_drawn_size():
    rect = draw_rectangle(64, 10, 44)
    assert extents(rect) == (10, 44) and rect.sum() == 440 and set(np.unique(rect)) == {0.0, 1.0}
    for diameter in (10, 11, 44):
        disc = draw_disc(64, diameter)
        assert extents(disc) == (diameter, diameter)
        box = disc[disc.any(axis=1)][:, disc.any(axis=0)]
        np.testing.assert_array_equal(box, box[::-1, ::-1])  # a symmetric disc...
        np.testing.assert_array_equal(box, box.T)
        top = np.flatnonzero(disc.any(axis=1))[0]
        assert top == (64 - diameter) // 2  # ...centred on the canvas
        assert disc.sum() == pytest.approx(np.pi * diameter ** 2 / 4, rel=0.12)


def test_sampled_sizes_cover_the_plans_range():
    shapes, rng = sampler(rectangle_rotation_probability=0.0), np.random.default_rng(0)
    sides = [extents(shapes.draw(rng, "rectangle")[0]) for _ in range(300)]
    flat = np.ravel(sides)
    assert flat.min() == 10 and flat.max() == 44  # uniform integers 10..44, both ends reached
    diameters = [extents(shapes.draw(rng, "disc")[0])[0] for _ in range(300)]
    assert min(diameters) == 10 and max(diameters) == 44


@pytest.mark.parametrize("patch_size", [128, 64])
def test_irregular_areas_span_foci_to_the_whole_canvas_median_1500_px_at_128(patch_size):
    shapes, rng = sampler(patch_size), np.random.default_rng(1)
    canvas = shapes.config.canvas_size
    area_scale = (patch_size / 128) ** 2
    masks = [shapes.draw(rng, "irregular")[0] for _ in range(1000)]
    areas = np.array([m.sum() for m in masks])
    longest = np.array([max(extents(m)) for m in masks])
    assert 1250 * area_scale <= np.median(areas) <= 1800 * area_scale  # the reference's ~1,500 px
    assert np.percentile(areas, 90) >= 0.7 * canvas ** 2  # often nearly the whole canvas
    assert np.percentile(areas, 5) <= 200 * area_scale  # and small foci too
    assert longest.max() >= 0.9 * canvas and longest.max() <= canvas


def test_rectangles_are_rotated_with_the_plans_probability():
    shapes, rng = sampler(shape_size_range=[10, 40]), np.random.default_rng(2)
    axis_aligned = []
    for _ in range(400):
        mask = shapes.draw(rng, "rectangle")[0]
        height, width = extents(mask)
        axis_aligned.append(mask.sum() == height * width)  # a rotated rectangle does not fill its box
    assert np.mean(axis_aligned) == pytest.approx(0.5 + 0.5 * 4 / 180, abs=0.07)  # angles near 0/90/180 stay boxes
    never = sampler(rectangle_rotation_probability=0.0)
    assert all(m.sum() == np.prod(extents(m)) for m in (never.draw(rng, "rectangle")[0] for _ in range(50)))


@pytest.mark.parametrize("patch_size", [128, 64])
def test_irregular_shapes_of_older_plans_fit_the_documented_bound(patch_size):
    shapes, rng = sampler(patch_size, irregular_extent_range=None), np.random.default_rng(1)
    low, high = shapes.config.shape_size_range
    # Zoom 1 maps the blob's extent to high/2; a ±15° rotation grows a box by at most cos + sin.
    bound = 2.0 * high / 2 * (np.cos(np.radians(15)) + np.sin(np.radians(15))) + 2
    longest = []
    for _ in range(200):
        mask, kind = shapes.draw(rng, "irregular")
        assert kind == "irregular" and mask.any()
        longest.append(max(extents(mask)))
    assert max(longest) <= min(bound, shapes.config.canvas_size)
    assert min(longest) >= low / 2 and np.mean(longest) > low


def test_irregular_rotation_and_zoom():
    square = np.ones((10, 10), np.float32)
    assert extents(draw_irregular(64, square, 1.0, 0.0)) == (10, 10)
    assert extents(draw_irregular(64, square, 2.0, 0.0)) == (20, 20)
    rotated = extents(draw_irregular(64, square, 2.0, 15.0))
    assert 22 <= rotated[0] <= 26  # 20·(cos 15° + sin 15°) ≈ 24.5


def test_shape_kind_follows_the_probabilities():
    shapes, rng = sampler(shape_probabilities={"rectangle": 0.0, "disc": 0.25, "irregular": 0.75}), \
        np.random.default_rng(2)
    kinds = [shapes.draw(rng)[1] for _ in range(800)]
    assert "rectangle" not in kinds
    assert kinds.count("disc") / len(kinds) == pytest.approx(0.25, abs=0.05)


def test_blur_keeps_a_soft_mask_in_0_1():
    rng = np.random.default_rng(3)
    sharp = sampler(blur_probability=0.0)
    assert all(set(np.unique(sharp.sample(rng))) <= {0.0, 1.0} for _ in range(20))
    soft = sampler(blur_probability=1.0, blur_sigma_range=[3.0, 3.0]).sample(rng)
    assert soft.min() >= 0 and soft.max() <= 1 and np.any((soft > 0.01) & (soft < 0.99))


def test_blob_library_is_seeded_and_built_once_per_process():
    a, b, c = BlobLibrary(4, seed=7), BlobLibrary(4, seed=7), BlobLibrary(4, seed=8)
    assert all(np.array_equal(x, y) for x, y in zip(a.blobs, b.blobs))
    assert not all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a.blobs, c.blobs))
    assert len(a.blobs) == 4 and all(blob.dtype == bool and blob.any() for blob in a.blobs)
    assert get_blob_library(4, 7) is get_blob_library(4, 7)


def test_sampler_pickles_without_its_library():
    shapes = sampler(irregular_library_size=4)
    shapes.draw(np.random.default_rng(0), "irregular")  # builds the library
    payload = pickle.dumps(shapes)
    assert len(payload) < 10_000
    restored = pickle.loads(payload)
    first = shapes.draw(np.random.default_rng(5), "irregular")[0]
    np.testing.assert_array_equal(restored.draw(np.random.default_rng(5), "irregular")[0], first)


def test_centre_lies_on_the_brain_and_keeps_the_canvas_inside():
    brain = np.zeros((32, 32), bool)
    brain[20:30, 2:12] = True  # partly closer than C/2 to the border
    rng = np.random.default_rng(4)
    centres = {choose_centre(brain, 16, rng) for _ in range(300)}
    # Brain pixels at least C/2 = 8 from the border: rows 20..24, columns 8..11, all of them drawn.
    assert centres == {(r, c) for r in range(20, 25) for c in range(8, 12)}
    for centre in centres:
        rows, cols = canvas_window(centre, 16)
        assert 0 <= rows.start and rows.stop <= 32 and 0 <= cols.start and cols.stop <= 32
    # No brain pixel far enough from the border: any interior centre.
    rows, cols = canvas_window(choose_centre(np.zeros((32, 32), bool), 16, rng), 16)
    assert rows.stop - rows.start == 16 and 0 <= rows.start and rows.stop <= 32
    with pytest.raises(ValueError, match="canvas_size"):
        choose_centre(brain, 40, rng)
