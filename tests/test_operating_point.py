"""Metrics at a fixed threshold, checked by hand on tiny volumes."""
from __future__ import annotations

import numpy as np
import pytest

from disyre_v2.evaluation.operating_point import measure_at_threshold, summarise_at_threshold

VOXEL_ML = 0.008  # 2 mm voxels


def _case():
    label = np.zeros((8, 8, 8), np.uint8)
    label[1:3, 1:3, 1:3] = 1  # lesion A: 8 voxels
    label[6, 6, 6] = 1  # lesion B: 1 voxel, missed
    score = np.zeros((8, 8, 8), np.float32)
    score[1:3, 1:3, 1] = 0.9  # 4 of A's voxels found
    score[5, 1, 1] = 0.8  # a false-positive component of one voxel
    score[4, 4, 4] = 0.3  # below the threshold
    return score, label, np.ones((8, 8, 8), bool)


def test_case_counts_by_hand():
    score, label, brain = _case()
    case = measure_at_threshold("a", score, label, brain, 0.5, VOXEL_ML)
    assert (case.tp, case.fp, case.fn) == (4, 1, 5)
    assert case.reference_lesion_ml == pytest.approx([8 * VOXEL_ML, VOXEL_ML])
    assert case.reference_found == [True, False]
    assert (case.predicted_components, case.false_positive_components) == (2, 1)
    metrics = case.metrics()
    assert metrics["dice"] == pytest.approx(8 / 14) and metrics["precision"] == pytest.approx(0.8)
    assert metrics["recall"] == pytest.approx(4 / 9)


def test_summary_pools_cases_and_lesion_free_volumes():
    score, label, brain = _case()
    lesion_case = measure_at_threshold("a", score, label, brain, 0.5, VOXEL_ML)
    free_score = np.zeros((8, 8, 8), np.float32)
    free_score[0, 0, 0:2] = 0.7  # 2 false-positive voxels in one component
    free_case = measure_at_threshold("b", free_score, np.zeros((8, 8, 8)), brain, 0.5, VOXEL_ML)
    summary = summarise_at_threshold([lesion_case, free_case], 0.5, "test", flagged={"a": True, "b": True})
    assert summary["pooled"]["dice"] == pytest.approx(8 / (8 + 3 + 5))
    assert summary["per_case_mean"]["dice"] == pytest.approx(8 / 14)  # lesion-free cases have no Dice
    lesion_wise = summary["lesion_wise"]
    assert lesion_wise["sensitivity"] == pytest.approx(0.5) and lesion_wise["false_positive_components"] == 2
    assert lesion_wise["precision"] == pytest.approx(1 / 3)  # 1 of 3 predicted components overlaps a lesion
    assert lesion_wise["f1"] == pytest.approx(2 * 0.5 / 3 / (0.5 + 1 / 3))
    assert lesion_wise["false_positive_components_per_volume"] == pytest.approx(1.0)
    assert lesion_wise["sensitivity_by_size"]["0-0.1 ml"] == {"lesions": 2, "found": 1, "sensitivity": 0.5}
    assert lesion_wise["sensitivity_by_size"][">=10 ml"]["sensitivity"] is None
    free = summary["lesion_free_volumes"]
    assert free["volumes"] == 1 and free["voxel_false_positive_rate"] == pytest.approx(2 / 512)
    assert summary["flagged"] == {"volumes_with_lesions": 1, "lesion_free_volumes": 1, "sensitivity": 1.0,
                                  "specificity": 0.0}


def test_a_given_mask_replaces_the_threshold():
    score, label, brain = _case()
    predicted = score > 0.85  # the false-positive voxel (0.8) dropped, e.g. by --min_lesion_ml
    case = measure_at_threshold("a", score, label, brain, 0.5, VOXEL_ML, predicted=predicted)
    assert (case.tp, case.fp, case.false_positive_components) == (4, 0, 0)
