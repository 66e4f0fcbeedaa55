"""The α grid of fixed anomalies (eqs. 1 and 2 at chosen strengths) and disyre_v2_plot_anomalies end to end."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from disyre_v2.planning.plan_and_preprocess_api import plan_and_preprocess
from disyre_v2.run.plot_anomalies import main, plot_anomalies
from disyre_v2.training.anomalies.config import AnomalySynthesisConfig
from disyre_v2.training.anomalies.figure import (FixedAnomaly, alpha_grid, dominant_clusters, draw_fixed_anomaly,
                                                 synthesize_with)
from tests.planning_test_data import write_raw_dataset

WINDOW = (slice(1, 5), slice(1, 5))


def _tiny():
    """A 1-channel 6×6 patch, its brain (one canvas pixel is background) and a 4×4 soft mask."""
    x = np.array([[0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
                  [0.0, 0.1, 0.9, 0.9, 0.1, 0.0],
                  [0.0, 0.1, 0.9, 0.9, 0.1, 0.0],
                  [0.0, 0.9, 0.9, 0.1, 0.1, 0.0],
                  [0.0, 0.9, 0.1, 0.1, 0.0, 0.0],
                  [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]], np.float32)[None]
    brain = x[0] > 0
    mask = np.full((4, 4), 0.5, np.float32)
    mask[1:3, 1:3] = 1.0
    foreign = np.linspace(0.2, 0.6, 16, dtype=np.float32).reshape(1, 4, 4)
    return x, brain, mask, foreign


def _anomaly(mask, foreign, clusters=None, sign=1.0):
    return FixedAnomaly(window=WINDOW, mask=mask, foreign=foreign, clusters=clusters, signs=(sign,))


def test_zero_strengths_give_the_input_exactly():
    x, brain, mask, foreign = _tiny()
    for clusters, centroids in ((None, None), ((1,), [[0.2, 0.8]])):
        out = synthesize_with(x, brain, _anomaly(mask, foreign, clusters), 0.0, 0.0, centroids=centroids)
        np.testing.assert_array_equal(out, x)


def test_texture_follows_equation_1_with_and_without_rescaling():
    x, brain, mask, foreign = _tiny()
    m = mask * brain[WINDOW]  # zero on the background pixel (4, 4) of the patch
    canvas = x[0][WINDOW]
    # FPI: the foreign patch as it is.
    expected = (1 - 0.5 * m) * canvas + 0.5 * m * foreign[0]
    out = synthesize_with(x, brain, _anomaly(mask, foreign), 0.5, 0.0, rescale=False)
    np.testing.assert_allclose(out[0][WINDOW], expected, rtol=0, atol=1e-6)
    outside = np.ones_like(brain)
    outside[WINDOW] = False
    np.testing.assert_array_equal(out[0][outside], x[0][outside])
    # DAG: the foreign patch mapped onto x's [min, max] on the support {m > 0}.
    support = m > 0
    f = foreign[0]
    rescaled = (f - f[support].min()) / (f[support].max() - f[support].min()) * (0.9 - 0.1) + 0.1
    expected = (1 - 1.0 * m) * canvas + 1.0 * m * rescaled
    out = synthesize_with(x, brain, _anomaly(mask, foreign), 1.0, 0.0, rescale=True)
    np.testing.assert_allclose(out[0][WINDOW], expected, rtol=0, atol=1e-6)
    assert out[0, 4, 4] == 0.0  # background stays exactly 0


def test_bias_follows_equation_2_on_the_whole_mask_and_on_one_tissue():
    x, brain, mask, foreign = _tiny()
    m = mask * brain[WINDOW]
    canvas = x[0][WINDOW]
    # No tissue cluster: the whole mask, sign −1, clipped at 0.
    out = synthesize_with(x, brain, _anomaly(mask, foreign, sign=-1.0), 0.0, 0.25)
    np.testing.assert_allclose(out[0][WINDOW], np.clip(canvas - 0.25 * m, 0, 1), rtol=0, atol=1e-6)
    # Cluster 1 of centroids (0.2, 0.8) is the 0.9 pixels; σ = 0 keeps m_tissue binary; +0.3 clips at 1.
    out = synthesize_with(x, brain, _anomaly(mask, foreign, clusters=(1,)), 0.0, 0.3,
                          centroids=[[0.2, 0.8]], tissue_sigma=0.0)
    np.testing.assert_allclose(out[0][WINDOW], np.clip(canvas + 0.3 * m * (canvas > 0.5), 0, 1), rtol=0, atol=1e-6)
    out = synthesize_with(x, brain, _anomaly(mask, foreign, clusters=(0,)), 0.0, 0.3,
                          centroids=[[0.2, 0.8]], tissue_sigma=0.0)
    np.testing.assert_allclose(out[0][WINDOW], canvas + 0.3 * m * (canvas < 0.5), rtol=0, atol=1e-6)


def test_alpha_grid_rows_are_bias_and_columns_texture():
    x, brain, mask, foreign = _tiny()
    anomaly = _anomaly(mask, foreign, clusters=(1,))
    alphas_text, alphas_bias = (0.0, 0.5, 1.0), (0.0, 0.2)
    grid = alpha_grid(x, brain, anomaly, alphas_text, alphas_bias, centroids=[[0.2, 0.8]], tissue_sigma=1.0)
    assert grid.shape == (2, 3, 1, 6, 6)
    np.testing.assert_array_equal(grid[0, 0], x)
    for i, a_bias in enumerate(alphas_bias):
        for j, a_text in enumerate(alphas_text):
            np.testing.assert_array_equal(
                grid[i, j], synthesize_with(x, brain, anomaly, a_text, a_bias, centroids=[[0.2, 0.8]], tissue_sigma=1.0))
    # More texture moves the canvas further from x; more bias moves it further again.
    change = np.abs(grid - x).sum(axis=(2, 3, 4))
    assert change[0, 0] == 0 < change[0, 1] < change[0, 2]
    assert change[1, 0] > 0


def test_bad_strengths_and_a_missing_foreign_patch_are_refused():
    x, brain, mask, foreign = _tiny()
    with pytest.raises(ValueError, match="needs a foreign patch"):
        synthesize_with(x, brain, _anomaly(mask, None), 0.5, 0.0)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        synthesize_with(x, brain, _anomaly(mask, foreign), 1.5, 0.0)
    with pytest.raises(ValueError, match="no centroids"):
        synthesize_with(x, brain, _anomaly(mask, foreign, clusters=(0,)), 0.0, 0.5)


def test_dominant_cluster_is_the_most_frequent_tissue_under_the_mask():
    x, brain, mask, _ = _tiny()
    support = (mask * brain[WINDOW]) > 0
    assert dominant_clusters(x[:, 1:5, 1:5], support, [[0.2, 0.8]]) == (0,)  # eight 0.1 pixels vs seven 0.9
    assert dominant_clusters(1 - x[:, 1:5, 1:5], support, [[0.2, 0.8]]) == (1,)


# -- on a tiny preprocessed dataset ----------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("plot_anomalies")
    with pytest.MonkeyPatch.context() as patch:
        for key, sub in (("DISYRE_raw", "raw"), ("DISYRE_preprocessed", "preprocessed"), ("DISYRE_results", "results")):
            (root / sub).mkdir()
            patch.setenv(key, str(root / sub))
        write_raw_dataset(root / "raw", 1, "Tiny", n_train=3, channels=("T1", "T2"), shape=(8, 40, 36),
                          spacing=(2.0, 2.0, 2.0))
        plan_and_preprocess(1, ["2d_small"], progress=False)
        yield root, patch


def test_draw_fixed_anomaly_is_seeded_and_follows_the_mode(tiny_dataset):
    root, _ = tiny_dataset
    folder = root / "preprocessed" / "Dataset001_Tiny"
    config = json.loads((folder / "plans.json").read_text())["configurations"]["2d_small"]
    image = np.load(folder / "2d_small" / "case00.npy")[:, 4]
    brain = np.load(folder / "2d_small" / "case00_mask.npy")[4]
    patch = tuple(config["patch_size"])
    x = np.zeros((2, *patch), np.float32)
    region = (slice(0, min(patch[0], image.shape[1])), slice(0, min(patch[1], image.shape[2])))
    x[(slice(None), *region)] = image[(slice(None), *region)]
    x_brain = np.zeros(patch, bool)
    x_brain[region] = brain[region]
    dag = AnomalySynthesisConfig.from_plans(config["anomaly_synthesis"], config["tissue_centroids"])
    a = draw_fixed_anomaly(dag, x, x_brain, image, brain, np.random.default_rng(3))
    b = draw_fixed_anomaly(dag, x, x_brain, image, brain, np.random.default_rng(3))
    assert a.window == b.window and a.clusters == b.clusters
    np.testing.assert_array_equal(a.mask, b.mask)
    np.testing.assert_array_equal(a.foreign, b.foreign)
    assert a.foreign.shape == (2, dag.canvas_size, dag.canvas_size) and len(a.clusters) == 2
    assert not np.any((a.mask > 0) & ~x_brain[a.window])  # the whole shape lies in the brain
    fpi = draw_fixed_anomaly(dag.with_mode("fpi"), x, x_brain, image, brain, np.random.default_rng(3))
    assert fpi.clusters is None and fpi.foreign is not None
    hypo = dataclasses.replace(a, signs=(-1.0, -1.0))
    assert synthesize_with(x, x_brain, hypo, 0.0, 1.0, centroids=dag.tissue_centroids).sum() < x.sum()


def test_cli_writes_a_png_in_dag_and_fpi_mode(tiny_dataset, capsys):
    root, _ = tiny_dataset
    out = root / "figures" / "dag.png"
    assert main(["-d", "1", "-c", "2d_small", "-o", str(out), "--seed", "1", "--n_samples", "4"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Wrote" in capsys.readouterr().out
    fpi = plot_anomalies("Dataset001_Tiny", "2d_small", root / "figures" / "fpi.png", mode="fpi", case="case01",
                         channel=1, n_samples=2)
    assert fpi.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (root / "figures").iterdir()) == ["dag.png", "fpi.png"]  # no temporary left


@pytest.mark.parametrize("argv_tail, message", [
    (["-c", "3d_fullres"], "Configuration '3d_fullres' is not in the plans"),
    (["-c", "2d_small", "--case", "nope"], "Case 'nope' is not in"),
    (["-c", "2d_small", "--channel", "5"], "--channel 5 does not exist"),
])
def test_cli_bad_arguments_give_one_clear_error(tiny_dataset, capsys, argv_tail, message):
    root, _ = tiny_dataset
    out = root / "bad" / "figure.png"
    assert main(["-d", "1", "-o", str(out), *argv_tail]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_cli_unsupported_format_and_missing_plans(tiny_dataset, capsys):
    root, _ = tiny_dataset
    assert main(["-d", "1", "-c", "2d_small", "-o", str(root / "figure.jpg")]) == 2
    assert "name the file .png" in capsys.readouterr().err
    (root / "preprocessed" / "Dataset002_Unplanned").mkdir()
    assert main(["-d", "2", "-c", "2d_small", "-o", str(root / "figure.png")]) == 2
    err = capsys.readouterr().err
    assert "plans.json does not exist" in err and "disyre_v2_plan_and_preprocess -d" in err
    assert not (root / "figure.png").exists()
