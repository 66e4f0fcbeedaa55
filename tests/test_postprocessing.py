"""The 3D median filter of the anomaly map (inference.median_filter_size)."""
import numpy as np
import pytest

from disyre_v2.inference.postprocessing import median_filter_map


def cube_brain(n=9, margin=1):
    brain = np.zeros((n, n, n), bool)
    brain[margin:-margin, margin:-margin, margin:-margin] = True
    return brain


def test_a_one_voxel_ridge_goes_a_blob_stays():
    brain = cube_brain(11)
    anomaly_map = np.where(brain, 0.1, 0.0).astype(np.float32)
    anomaly_map[5, 2:9, 2:9] = 1.0  # a plane one voxel thick: 9 of the 27 voxels around each of its voxels
    anomaly_map[2:5, 2:5, 2:5] = 2.0  # a 3x3x3 blob
    filtered = median_filter_map(anomaly_map, brain, 3)
    assert filtered[5, 4, 6] == pytest.approx(0.1)  # the ridge is gone
    assert filtered[3, 3, 3] == pytest.approx(2.0)  # the blob's centre keeps its score
    assert (filtered[~brain] == 0).all()


def test_the_rim_of_the_brain_is_outvoted_as_inside_it_but_never_zeroed():
    brain = cube_brain(9)
    anomaly_map = np.where(brain, 0.05, 0.0).astype(np.float32)
    from scipy import ndimage

    shell = brain & ~ndimage.binary_erosion(brain)
    anomaly_map[shell] = 0.5  # a high ridge along the whole boundary (corners included)
    filtered = median_filter_map(anomaly_map, brain, 3)
    # A face voxel: 9 shell, 9 inner, 9 outside (taking the smallest brain value nearby, 0.05) -> 0.05.
    assert filtered[4, 4, 1] == pytest.approx(0.05)
    assert (filtered[brain] > 0).all()  # every brain voxel keeps a score: the edge is still scored
    # A constant map stays constant everywhere in the brain, corners included.
    constant = median_filter_map(np.where(brain, 0.3, 0.0).astype(np.float32), brain, 3)
    np.testing.assert_allclose(constant[brain], 0.3)
    assert (constant[~brain] == 0).all()


def test_off_and_even_sizes():
    brain = cube_brain(7)
    anomaly_map = np.random.default_rng(0).random((7, 7, 7)).astype(np.float32) * brain
    np.testing.assert_array_equal(median_filter_map(anomaly_map, brain, 0), anomaly_map)
    np.testing.assert_array_equal(median_filter_map(anomaly_map, brain, 1), anomaly_map)
    for bad in (4, -3):
        with pytest.raises(ValueError, match="median_filter_size must be 0 \\(off\\) or an odd number"):
            median_filter_map(anomaly_map, brain, bad)


@pytest.mark.parametrize("size", [3, 5])
@pytest.mark.parametrize("shape, brain_share", [((13, 17, 11), 0.6), ((6, 9, 7), 0.9), ((12, 14, 10), 0.15)])
def test_the_torch_filter_equals_scipy_exactly(size, shape, brain_share):
    # Random maps (negative values too) and random masks that touch every border of the volume:
    # the zero padding beyond the volume, the floor and the masking must all match scipy bit for bit.
    import torch

    from disyre_v2.inference.postprocessing import median_filter_scipy, median_filter_torch

    rng = np.random.default_rng(size * 100 + shape[0])
    for trial in range(3):
        anomaly_map = (rng.random(shape) - 0.2).astype(np.float32)
        brain = rng.random(shape) < brain_share
        brain[0], brain[:, -1], brain[..., 0] = True, True, True  # the mask reaches the borders
        expected = median_filter_scipy(anomaly_map, brain, size)
        for chunk_bytes in (1, None):  # one slice per chunk, and the default chunks
            found = median_filter_torch(torch.from_numpy(anomaly_map), torch.from_numpy(brain), size, chunk_bytes)
            np.testing.assert_array_equal(found.numpy(), expected)
    # The ties of a real map (many equal values, zeros) as well.
    quantised = np.round(rng.random(shape) * 3).astype(np.float32) / 3
    brain = rng.random(shape) < brain_share
    found = median_filter_torch(torch.from_numpy(quantised), torch.from_numpy(brain), size)
    np.testing.assert_array_equal(found.numpy(), median_filter_scipy(quantised, brain, size))


def test_the_map_filter_runs_in_torch_on_an_accelerator_and_with_scipy_on_the_cpu(monkeypatch):
    import torch

    from disyre_v2.inference import postprocessing

    brain = cube_brain(9)
    anomaly_map = np.random.default_rng(1).random((9, 9, 9)).astype(np.float32)
    calls = []
    real = postprocessing.median_filter_torch
    monkeypatch.setattr(postprocessing, "median_filter_torch",
                        lambda values, mask, size: calls.append(values.device.type) or real(values, mask, size))
    cpu = median_filter_map(anomaly_map, brain, 3)
    assert calls == []  # scipy: measured faster on the CPU
    if torch.cuda.is_available():
        np.testing.assert_array_equal(median_filter_map(anomaly_map, brain, 3, "cuda"), cpu)
        assert calls == ["cuda"]


def test_the_predictor_filters_its_map_with_the_plans_size(tmp_path):
    from pathlib import Path

    import torch

    from disyre_v2.inference.model_loading import LoadedModel
    from disyre_v2.inference.predictor import DisyrePredictor
    from tests.test_predictor import plans_for

    class Shift(torch.nn.Module):  # a content-dependent restoration: the neighbour to the right
        def forward(self, x, t=None):
            return torch.roll(x, 1, dims=-1)

    rng = np.random.default_rng(0)
    mask = np.zeros((8, 24, 24), bool)
    mask[1:7, 3:21, 4:20] = True
    data = (rng.random((1, 8, 24, 24)) * mask).astype(np.float32)
    maps = {}
    for size in (0, 3):
        plans = plans_for(1)
        plans["configurations"]["2d_small"]["inference"]["median_filter_size"] = size
        predictor = DisyrePredictor(plans, "2d_small", [LoadedModel(Shift(), True, Path("m"))])
        maps[size], _ = predictor.predict_preprocessed(data, mask)
    np.testing.assert_allclose(maps[3], median_filter_map(maps[0], mask, 3), atol=1e-7)
    assert not np.allclose(maps[3], maps[0])


def test_folder_prediction_filters_once_in_its_export_stage_like_predict_case(tmp_path):
    from pathlib import Path

    import torch

    from disyre_v2.imageio.reader import read_image
    from disyre_v2.inference.model_loading import LoadedModel
    from disyre_v2.inference.predict_folder import predict_folder
    from disyre_v2.inference.predictor import DisyrePredictor
    from tests.test_predictor import plans_for, write_case

    class Shift(torch.nn.Module):
        def forward(self, x, t=None):
            return torch.roll(x, 1, dims=-1)

    paths, _ = write_case(tmp_path / "in", "a", seed=4)
    plans = plans_for(1)
    plans["configurations"]["2d_small"]["inference"]["median_filter_size"] = 3
    predictor = DisyrePredictor(plans, "2d_small", [LoadedModel(Shift(), True, Path("m"))])
    expected, _, _ = predictor.predict_case(paths)
    for workers in (0, 1):
        predict_folder(predictor, tmp_path / "in", tmp_path / f"out{workers}", num_workers=workers)
        written, _ = read_image(tmp_path / f"out{workers}" / "a.nii.gz")
        np.testing.assert_allclose(written, expected, atol=1e-6)
    unfiltered = plans_for(1)
    unfiltered["configurations"]["2d_small"]["inference"]["median_filter_size"] = 0
    raw, _, _ = DisyrePredictor(unfiltered, "2d_small", [LoadedModel(Shift(), True, Path("m"))]).predict_case(paths)
    assert not np.allclose(raw, expected)


def test_a_predictor_on_an_accelerator_filters_before_export_once_and_identically(tmp_path, monkeypatch):
    # On CUDA the filter runs in torch inside predict_preprocessed and the export must not filter
    # again; simulated on the CPU (the torch filter runs on any device), the maps are those of scipy.
    import json
    from pathlib import Path

    import torch

    from disyre_v2.imageio.reader import read_image
    from disyre_v2.inference import predict_folder as folder_module
    from disyre_v2.inference.model_loading import LoadedModel
    from disyre_v2.inference.predict_folder import predict_folder
    from disyre_v2.inference.predictor import DisyrePredictor
    from tests.test_predictor import plans_for, write_case

    class Shift(torch.nn.Module):
        def forward(self, x, t=None):
            return torch.roll(x, 1, dims=-1)

    paths, _ = write_case(tmp_path / "in", "a", seed=5)
    predictor = DisyrePredictor(plans_for(1), "2d_small", [LoadedModel(Shift(), True, Path("m"))], median_filter_size=3)
    expected, _, _ = predictor.predict_case(paths)  # CPU: scipy
    monkeypatch.setattr(DisyrePredictor, "filters_on_device", property(lambda self: True))
    sizes = []
    export = folder_module.export_and_write
    monkeypatch.setattr(folder_module, "export_and_write",
                        lambda *args: sizes.append(args[6]) or export(*args))
    predict_folder(predictor, tmp_path / "in", tmp_path / "out")
    assert sizes == [0]  # filtered on the device already
    np.testing.assert_array_equal(read_image(tmp_path / "out" / "a.nii.gz")[0], expected)
    assert json.loads((tmp_path / "out" / ".a.json").read_text())["median_filter_size"] == 3
