"""Error analysis of disyre_v2_evaluate: false positives by band, score distributions, volume detection."""
import json

import numpy as np
import pytest

from disyre_v2.evaluation.error_analysis import (
    band_indices,
    distance_to_boundary_mm,
    quantile,
    top_threshold,
    volume_detection,
)
from disyre_v2.evaluation.evaluator import evaluate_folders
from disyre_v2.evaluation.sparse_histogram import SparseHistogram
from disyre_v2.imageio.geometry import Geometry, axial_axis
from disyre_v2.run import evaluate as cli
from tests.nifti_factory import write_nifti


def geometry(shape_zyx, spacing_xyz=(1.0, 1.0, 1.0), direction=(1, 0, 0, 0, 1, 0, 0, 0, 1)):
    return Geometry(tuple(float(s) for s in spacing_xyz), (0.0, 0.0, 0.0), tuple(float(d) for d in direction),
                    tuple(reversed(shape_zyx)))


def test_distance_to_boundary_of_a_cube_in_mm():
    brain = np.zeros((7, 7, 7), bool)
    brain[1:6, 1:6, 1:6] = True  # a 5-voxel cube: layers at 1, 2, 3 voxels from the outside
    distance = distance_to_boundary_mm(brain, (2.0, 2.0, 2.0))
    assert distance[3, 3, 3] == pytest.approx(6.0)
    assert distance[1, 3, 3] == pytest.approx(2.0) and distance[2, 3, 3] == pytest.approx(4.0)
    assert distance[0].max() == 0
    # Anisotropic: along z voxels are 3 mm, in-plane 1 mm; the nearest outside is in-plane.
    distance = distance_to_boundary_mm(brain, (3.0, 1.0, 1.0))
    assert distance[3, 3, 3] == pytest.approx(3.0)
    assert distance[1, 3, 3] == pytest.approx(3.0)  # one z-step (3 mm) or three in-plane steps (3 mm) out
    assert distance[3, 1, 3] == pytest.approx(1.0)


def test_the_grid_border_counts_as_outside():
    brain = np.ones((5, 5, 5), bool)
    distance = distance_to_boundary_mm(brain, (1.0, 1.0, 1.0))
    assert distance[0, 2, 2] == 1.0 and distance[2, 2, 2] == 3.0


def test_axial_axis_follows_the_direction_cosines():
    assert axial_axis(geometry((4, 5, 6))) == (0, 1)
    assert axial_axis(geometry((4, 5, 6), direction=(1, 0, 0, 0, 1, 0, 0, 0, -1))) == (0, -1)
    # Sagittal storage (as IXI's T1): array x runs inferior-superior.
    sagittal = (0, 1, 0, 0, 0, 1, 1, 0, 0)  # columns: x -> physical z, y -> physical x, z -> physical y
    assert axial_axis(geometry((4, 5, 6), direction=sagittal)) == (2, 1)


def test_position_bands_are_deciles_of_the_brain_extent_inferior_first():
    brain = np.zeros((12, 3, 3), bool)
    brain[1:11] = True  # ten brain slices: one decile each
    _, position = band_indices(brain, geometry(brain.shape))
    z = np.nonzero(brain)[0]
    assert np.array_equal(position, z - 1)
    _, flipped = band_indices(brain, geometry(brain.shape, direction=(1, 0, 0, 0, 1, 0, 0, 0, -1)))
    assert np.array_equal(flipped, 10 - z)


def test_top_threshold_and_quantiles_of_a_histogram():
    scores = np.arange(1, 1001, dtype=np.float32)
    histogram = SparseHistogram.from_scores(scores, np.zeros(1000, bool))
    assert top_threshold(histogram, 0.001) == pytest.approx(1000.0, rel=2**-13)
    assert top_threshold(histogram, 0.01) == pytest.approx(991.0, rel=2**-12)
    assert histogram.counts_at_or_above(top_threshold(histogram, 0.01))[1] == 10
    assert quantile(histogram, 0.5, "negatives") == pytest.approx(500.0, rel=2**-12)
    assert quantile(histogram, 0.5, "positives") is None
    assert top_threshold(SparseHistogram.from_scores(scores, np.ones(1000, bool)), 0.01) == np.inf


def test_volume_detection_counts_lesioned_volumes_above_every_lesion_free_one():
    result = volume_detection([0.1, 0.2, 0.3, 0.15, 0.5], [False, False, True, True, True],
                              [None, None, "a", "a", "b"])
    assert result["lesion_free"] == {"n": 2, "median": pytest.approx(0.15), "max": pytest.approx(0.2)}
    assert result["all lesioned"]["above_every_lesion_free"] == pytest.approx(2 / 3)
    assert result["a"]["above_every_lesion_free"] == 0.5 and result["b"]["min"] == 0.5


def _ball_case(tmp_path, case_id, score_of, lesion=False):
    """A 2 mm ball brain; ``score_of(distance_mm, z)`` gives the map; optional central lesion."""
    shape = (16, 16, 16)
    z, y, x = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    brain = (z - 7.5) ** 2 + (y - 7.5) ** 2 + (x - 7.5) ** 2 <= 6.5**2
    distance = distance_to_boundary_mm(brain, (2.0, 2.0, 2.0))
    label = np.zeros(shape, np.uint8)
    if lesion:
        label[(z - 7.5) ** 2 + (y - 7.5) ** 2 + (x - 7.5) ** 2 <= 2.0**2] = 1
    score = (score_of(distance, z) * brain).astype(np.float32)
    score[label > 0] = 10.0
    write_nifti(tmp_path / "ref" / f"{case_id}.nii.gz", label, spacing=(2.0, 2.0, 2.0))
    write_nifti(tmp_path / "masks" / f"{case_id}.nii.gz", brain.astype(np.uint8), spacing=(2.0, 2.0, 2.0))
    write_nifti(tmp_path / "pred" / f"{case_id}.nii.gz", score, spacing=(2.0, 2.0, 2.0))
    return brain, distance, label


def test_a_rim_map_puts_every_false_positive_in_the_rim(tmp_path):
    # Lesion-free voxels score by closeness to the boundary: the top ones are the rim.
    rim_first = lambda d, z: 1.0 / (d + 0.5) + 1e-3 * z  # noqa: E731
    cases = [_ball_case(tmp_path, f"c{i}", rim_first, lesion=i == 0) for i in range(3)]
    summary = evaluate_folders(tmp_path / "pred", tmp_path / "ref", mask_dir=tmp_path / "masks", progress=False)
    fp = summary["error_analysis"]["false_positives"]
    rim_voxels = sum(((d > 0) & (d <= 2.0) & (lab == 0)).sum() for _, d, lab in cases)
    healthy_voxels = sum((b & (lab == 0)).sum() for b, _, lab in cases)
    assert fp["rim_brain_share"] == pytest.approx(rim_voxels / healthy_voxels)
    assert fp["rim_share"]["top_0.1pct"] == 1.0 and fp["rim_share"]["top_1pct"] == 1.0
    assert fp["rim_ratio"] == pytest.approx(healthy_voxels / rim_voxels)
    z = np.arange(16)[:, None, None]
    rim_scores = np.concatenate([(1.0 / (d + 0.5) + 1e-3 * z + 0 * d)[(d > 0) & (d <= 2.0) & (lab == 0)]
                                 for _, d, lab in cases])
    assert fp["by_distance_to_boundary"][0]["healthy_mean"] == pytest.approx(rim_scores.mean(), rel=1e-3)
    shares = [row["brain_share"] for row in fp["by_distance_to_boundary"]]
    assert sum(shares) == pytest.approx(1.0) and fp["by_distance_to_boundary"][0]["band"] == "0-2 mm"
    # The ties are broken by z: the highest-scoring rim voxels are in the top slices.
    position = fp["by_axial_position"]
    assert position[-1]["top_0.1pct_share"] == 1.0 and len(position) == 10

    dist = summary["error_analysis"]["score_distributions"]["all"]
    assert dist["lesion_quantiles"]["50"] == pytest.approx(10.0, rel=1e-3)
    assert dist["lesion_recall_at_healthy_top"]["top_0.1pct"] == 1.0
    volume = summary["error_analysis"]["volume_detection"]
    assert volume["lesion_free"]["n"] == 2 and volume["all lesioned"]["n"] == 1


def test_a_deep_map_puts_no_false_positive_in_the_rim_and_the_report_shows_it(tmp_path, capsys):
    deep_first = lambda d, z: d + 1e-3 * z  # noqa: E731
    for i in range(2):
        _ball_case(tmp_path, f"c{i}", deep_first, lesion=i == 0)
    report = tmp_path / "report"
    assert cli.main(["-pred", str(tmp_path / "pred"), "-ref", str(tmp_path / "ref"), "-mask", str(tmp_path / "masks"),
                     "--report", str(report)]) == 0
    printed = capsys.readouterr().out
    assert "0.0 % within 2 mm of the brain boundary" in printed
    summary = json.loads((tmp_path / "pred" / "summary.json").read_text())
    fp = summary["error_analysis"]["false_positives"]
    assert fp["rim_share"]["top_0.1pct"] == 0.0 and fp["rim_ratio"] == 0.0
    deepest = fp["by_distance_to_boundary"][3]  # the ball's centre lies 14 mm deep
    assert deepest["band"] == "8-16 mm" and deepest["top_0.1pct_share"] == 1.0
    page = (report / "index.html").read_text()
    assert "Error analysis" in page and "By distance to the brain boundary" in page
    for figure in ("false_positive_bands.png", "score_distributions.png", "volume_scores.png"):
        assert (report / figure).stat().st_size > 1000
