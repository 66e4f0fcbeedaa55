"""Binary masks and lesion tables from thresholded maps, checked by hand on tiny volumes."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from disyre_v2.imageio.geometry import Geometry
from disyre_v2.inference.lesions import find_lesions, index_to_world

# 2 mm isotropic voxels (8 µl each), an oblique direction and an origin, as a real scan has.
ANGLE = np.deg2rad(30)
DIRECTION = (np.cos(ANGLE), -np.sin(ANGLE), 0.0, np.sin(ANGLE), np.cos(ANGLE), 0.0, 0.0, 0.0, 1.0)
GEOMETRY = Geometry((2.0, 2.0, 2.0), (-40.0, 10.0, 5.0), tuple(float(d) for d in DIRECTION), (12, 10, 8))


def _map() -> tuple[np.ndarray, np.ndarray]:
    score = np.zeros(GEOMETRY.shape_zyx, np.float32)
    score[1:3, 1:3, 1:3] = 0.9  # a 2x2x2 cube: 8 voxels, 0.064 ml
    score[2, 2, 2] = 1.0
    score[5, 5, 5] = 0.8  # one voxel touching the next only by a corner: 26-connected
    score[6, 6, 6] = 0.6
    score[5, 8, 10] = 0.7  # one isolated voxel
    score[0, 9, 11] = 0.95  # outside the brain below
    brain = np.ones(GEOMETRY.shape_zyx, bool)
    brain[0, 9, 11] = False
    return score, brain


def test_mask_components_and_table_by_hand():
    score, brain = _map()
    mask, lesions = find_lesions(score, brain, 0.5, GEOMETRY)
    assert mask.dtype == np.uint8 and mask.sum() == 8 + 2 + 1 and mask[0, 9, 11] == 0
    assert [lesion.voxels for lesion in lesions] == [8, 2, 1]  # largest first; the corner pair is one lesion
    cube, pair, single = lesions
    assert [lesion.lesion_id for lesion in lesions] == [1, 2, 3]
    assert cube.volume_ml == pytest.approx(8 * 8 / 1000)
    assert cube.max_score == pytest.approx(1.0) and cube.mean_score == pytest.approx((7 * 0.9 + 1.0) / 8)
    assert cube.bbox_min == (1, 1, 1) and cube.bbox_max == (2, 2, 2)  # (i, j, k) = (x, y, z)
    assert pair.bbox_min == (5, 5, 5) and pair.bbox_max == (6, 6, 6)
    assert single.bbox_min == (10, 8, 5) and pair.mean_score == pytest.approx(0.7)
    # The centroid in world millimetres is what SimpleITK gives for the continuous index.
    image = GEOMETRY.apply_to(sitk.Image(list(GEOMETRY.size), sitk.sitkUInt8))
    assert cube.centroid_mm == pytest.approx(image.TransformContinuousIndexToPhysicalPoint((1.5, 1.5, 1.5)))
    assert single.centroid_mm == pytest.approx(image.TransformContinuousIndexToPhysicalPoint((10, 8, 5)))


def test_threshold_is_strict_and_small_lesions_are_removed():
    score, brain = _map()
    mask, lesions = find_lesions(score, brain, 0.9, GEOMETRY)  # only the 1.0 voxel is above 0.9 in the brain
    assert mask.sum() == 1 and [lesion.voxels for lesion in lesions] == [1]
    mask, lesions = find_lesions(score, brain, 0.5, GEOMETRY, min_volume_ml=0.016)  # 2 voxels = 0.016 ml stay
    assert [lesion.voxels for lesion in lesions] == [8, 2] and mask.sum() == 10 and mask[5, 8, 10] == 0
    mask, lesions = find_lesions(score, brain, 0.5, GEOMETRY, min_volume_ml=0.1)
    assert lesions == [] and mask.sum() == 0


def test_index_to_world_matches_simpleitk():
    image = GEOMETRY.apply_to(sitk.Image(list(GEOMETRY.size), sitk.sitkUInt8))
    points = np.array([[0, 0, 0], [3.5, 2.25, 7.0], [11, 9, 7]])
    expected = [image.TransformContinuousIndexToPhysicalPoint(p.tolist()) for p in points]
    assert index_to_world(points, GEOMETRY) == pytest.approx(np.asarray(expected))
