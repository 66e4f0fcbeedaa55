import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from disyre_v2.imageio import read_image
from disyre_v2.inference.model_loading import LoadedModel
from disyre_v2.inference.predict_folder import predict_folder, shard
from disyre_v2.inference.predictor import DisyrePredictor
from disyre_v2.inference.volume_score import volume_score
from disyre_v2.run import predict as cli
from disyre_v2.training.run_training import train
from tests.nifti_factory import OBLIQUE_DIRECTION, write_nifti
from tests.trainer_fixtures import make_preprocessed_dataset


class Identity(torch.nn.Module):
    def forward(self, x, t=None):
        return x.clone()


class Constant(torch.nn.Module):
    def __init__(self, value):
        super().__init__()
        self.value = value

    def forward(self, x, t=None):
        return torch.full_like(x, self.value)


def plans_for(channels=1, resample=True, spacing=(2.0, 2.0, 2.0)):
    return {
        "channel_names": {str(i): f"c{i}" for i in range(channels)},
        "configurations": {"2d_small": {
            "data_identifier": "2d_small", "spacing": list(spacing), "resample": resample, "slice_axis": 0,
            "patch_size": [16, 16], "normalization": {"percentile": 98.0, "domain": "brain", "clip": [0.0, 1.0]},
            "schedule": {"num_levels": 100, "beta_start": 0.001, "beta_end": 0.2},
            "inference": {"ensemble_levels": [0, 25, 50, 75], "tile_step": 0.25, "gaussian_sigma_scale": 0.125,
                          "gaussian_min": 0.001},
            # Training-only entries: the predictor does not read them.
            **{key: {} for key in ("batch", "network", "anomaly_synthesis", "augmentation", "training")},
            "tissue_centroids": [],
        }},
    }


def predictor(network, channels=1, conditional=True, **kwargs):
    model = LoadedModel(network, conditional, Path("model"))
    return DisyrePredictor(plans_for(channels), "2d_small", [model], **kwargs)


def write_case(folder, case, shape=(12, 22, 20), value=None, channels=1, spacing=(2.0, 2.0, 2.0),
               direction=OBLIQUE_DIRECTION, seed=0):
    rng = np.random.default_rng(seed)
    brain = np.zeros(shape, bool)
    brain[2:-2, 3:-3, 3:-3] = True
    paths = []
    for c in range(channels):
        image = (np.full(shape, value) if value is not None else rng.uniform(50, 100, shape)) * brain
        paths.append(write_nifti(folder / f"{case}_{c:04d}.nii.gz", image.astype(np.float32), spacing=spacing,
                                 origin=(4.0, -3.0, 7.5), direction=direction))
    return paths, brain


def test_identity_network_gives_exactly_zero(tmp_path):
    paths, _ = write_case(tmp_path, "a")
    anomaly_map, _, _ = predictor(Identity()).predict_case(paths)
    assert anomaly_map.shape == (12, 22, 20) and float(np.abs(anomaly_map).max()) == 0.0


def test_constant_network_on_constant_image(tmp_path):
    # A constant image is all brain; it normalises to 1 (its 98th percentile), so every window is full of
    # brain (f = 1) and the blended map is |c - 1| everywhere.
    path = write_nifti(tmp_path / "a_0000.nii.gz", np.full((12, 22, 20), 80.0, np.float32), spacing=(2.0, 2.0, 2.0),
                       direction=OBLIQUE_DIRECTION)
    anomaly_map, _, _ = predictor(Constant(0.25)).predict_case([path])
    np.testing.assert_allclose(anomaly_map, 0.75, atol=1e-6)


def test_windows_with_little_brain_count_less(tmp_path):
    # method_numbers.md ("Inference and the anomaly score"): Σ w·f·AS / Σ w. Near the brain's edge windows hold background, so f < 1 and a
    # constant residual is damped there, while it is exact where every window is full of brain.
    paths, brain = write_case(tmp_path, "a", value=80.0)
    anomaly_map, _, _ = predictor(Constant(0.25)).predict_case(paths)
    assert float(np.abs(anomaly_map[~brain]).max()) == 0.0
    assert 0 < anomaly_map[brain].min() < anomaly_map[brain].max() <= 0.75 + 1e-6


def test_output_geometry_equals_input_with_oblique_direction(tmp_path):
    paths, _ = write_case(tmp_path / "in", "case1", spacing=(1.5, 2.5, 3.0))
    predict_folder(predictor(Constant(0.1)), tmp_path / "in", tmp_path / "out", save_restorations=True)
    reference = sitk.ReadImage(str(paths[0]))
    written = sitk.ReadImage(str(tmp_path / "out" / "case1.nii.gz"))
    assert written.GetPixelID() == sitk.sitkFloat32
    assert written.GetSize() == reference.GetSize()
    np.testing.assert_allclose(written.GetSpacing(), reference.GetSpacing())
    np.testing.assert_allclose(written.GetOrigin(), reference.GetOrigin(), atol=1e-6)
    np.testing.assert_allclose(written.GetDirection(), OBLIQUE_DIRECTION, atol=1e-6)
    assert (tmp_path / "out" / "restorations" / "case1_0000.nii.gz").is_file()
    scores = (tmp_path / "out" / "volume_scores.csv").read_text().splitlines()
    assert scores[0] == "case_id,volume_score" and scores[1].startswith("case1,")


def test_ensemble_equals_mean_of_single_steps(tmp_path):
    paths, _ = write_case(tmp_path, "a", channels=2)

    class LevelDependent(torch.nn.Module):
        def forward(self, x, t):
            return x * (1 - t.float().view(-1, 1, 1, 1) / 150) + 0.01

    ensemble, _, _ = predictor(LevelDependent(), channels=2).predict_case(paths)
    singles = [predictor(LevelDependent(), channels=2, score="singlestep", levels=[t]).predict_case(paths)[0]
               for t in (0, 25, 50, 75)]
    np.testing.assert_allclose(ensemble, np.mean(singles, axis=0), atol=1e-6)
    assert ensemble.max() > 0


def test_models_are_averaged(tmp_path):
    paths, _ = write_case(tmp_path, "a", value=80.0)
    models = [LoadedModel(Constant(0.5), True, Path("a")), LoadedModel(Constant(0.0), True, Path("b"))]
    both = DisyrePredictor(plans_for(), "2d_small", models).predict_case(paths)[0]
    one = [DisyrePredictor(plans_for(), "2d_small", [m]).predict_case(paths)[0] for m in models]
    np.testing.assert_allclose(both, (one[0] + one[1]) / 2, atol=1e-6)


def test_in_memory_prediction_matches_files(tmp_path):
    paths, _ = write_case(tmp_path, "a", seed=3)
    image, geometry = read_image(paths[0])
    from_files = predictor(Constant(0.3)).predict_case(paths)[0]
    from_array = predictor(Constant(0.3)).predict_array(image, geometry)[0]
    np.testing.assert_array_equal(from_files, from_array)


def test_sharding_covers_every_case_once_and_continue_skips(tmp_path):
    for i in range(5):
        write_case(tmp_path / "in", f"c{i}", seed=i)
    cases = [f"c{i}" for i in range(5)]
    parts = [shard(cases, 3, k) for k in range(3)]
    assert sorted(sum(parts, [])) == cases
    written = []
    for k in range(2):
        written += predict_folder(predictor(Constant(0.2)), tmp_path / "in", tmp_path / "out", num_parts=2, part_id=k)
    assert sorted(p.name for p in written) == [f"c{i}.nii.gz" for i in range(5)]
    assert len((tmp_path / "out" / "volume_scores.csv").read_text().splitlines()) == 6
    again = predict_folder(predictor(Constant(0.2)), tmp_path / "in", tmp_path / "out", resume=True)
    assert again == []
    with pytest.raises(ValueError, match="--part_id must lie in 0..1"):
        shard(cases, 2, 2)


def test_bad_inputs_name_the_case(tmp_path):
    write_case(tmp_path / "in", "ok")
    write_case(tmp_path / "in", "two", channels=2)
    with pytest.raises(ValueError, match="case two: two_0001.nii.gz exists but the model was trained on 1 channel"):
        predict_folder(predictor(Identity()), tmp_path / "in", tmp_path / "out")
    (tmp_path / "in2").mkdir()
    write_case(tmp_path / "in2", "one")
    with pytest.raises(FileNotFoundError, match=r"case one: channel file\(s\) one_0001.nii.gz missing"):
        predict_folder(predictor(Identity(), channels=2), tmp_path / "in2", tmp_path / "out")
    paths, _ = write_case(tmp_path / "in3", "grid", channels=2)
    write_nifti(paths[1], np.ones((12, 22, 21), np.float32))
    with pytest.raises(Exception, match=r"grid_0001.nii.gz is not on the grid of .*grid_0000.nii.gz"):
        predict_folder(predictor(Identity(), channels=2), tmp_path / "in3", tmp_path / "out3")
    assert not (tmp_path / "out3" / "grid.nii.gz").exists()
    # The same error from a background process, after a good case: no partial file of either (the
    # good case's export, if it had started, is finished whole).
    write_case(tmp_path / "in3", "agood", channels=2)
    with pytest.raises(Exception, match=r"grid_0001.nii.gz is not on the grid of .*grid_0000.nii.gz"):
        predict_folder(predictor(Identity(), channels=2), tmp_path / "in3", tmp_path / "out4", num_workers=2)
    names = {p.name for p in (tmp_path / "out4").iterdir()}
    assert names in (set(), {".agood.json", "agood.nii.gz"})


def test_crash_while_writing_leaves_no_partial_file(tmp_path, monkeypatch):
    write_case(tmp_path / "in", "a")

    def crash(image, path, **kwargs):
        Path(path).write_bytes(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(sitk, "WriteImage", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        predict_folder(predictor(Identity()), tmp_path / "in", tmp_path / "out")
    assert [p.name for p in (tmp_path / "out").iterdir()] == []


def test_score_and_model_kind_must_match():
    with pytest.raises(ValueError, match="--score unconditional needs models trained without the level input"):
        predictor(Identity(), score="unconditional")
    with pytest.raises(ValueError, match="--score ensemble needs models trained with the level input"):
        predictor(Identity(), conditional=False, score="ensemble")
    assert predictor(Identity(), conditional=False).score == "unconditional"  # no --score: the model's own
    with pytest.raises(ValueError, match="singlestep takes exactly one level"):
        predictor(Identity(), score="singlestep", levels=[0, 25])


def test_volume_score_is_mean_of_top_percent():
    values = np.arange(1, 201, dtype=np.float32).reshape(2, 10, 10)
    brain = np.ones_like(values, bool)
    assert volume_score(values, brain) == pytest.approx((200 + 199) / 2)  # top 1 % of 200 voxels = 2


def test_cli_end_to_end_with_trained_model(tmp_path, monkeypatch):
    for key, sub in (("DISYRE_raw", "raw"), ("DISYRE_preprocessed", "pre"), ("DISYRE_results", "res")):
        (tmp_path / sub).mkdir()
        monkeypatch.setenv(key, str(tmp_path / sub))
    monkeypatch.setenv("DISYRE_n_proc_DA", "0")
    name = make_preprocessed_dataset(tmp_path)
    train(1, "2d_small", 0, trainer="DisyreTrainer_debug", seed=0)
    images = tmp_path / "raw" / name / "imagesTs"
    out = tmp_path / "maps"
    assert cli.main(["-i", str(images), "-o", str(out), "-d", "1", "-c", "2d_small", "-tr", "DisyreTrainer_debug",
                     "--save_restorations"]) == 0
    cases = sorted(p.name for p in out.glob("*.nii.gz"))
    assert cases == ["test00.nii.gz", "test01.nii.gz"]
    anomaly_map, _ = read_image(out / "test00.nii.gz")
    mask, _ = read_image(tmp_path / "raw" / name / "masksTs" / "test00.nii.gz")
    assert anomaly_map.max() > 0 and float(np.abs(anomaly_map[mask == 0]).max()) == 0.0
    sidecar = json.loads((out / ".test00.json").read_text())
    assert sidecar["score"] == "ensemble" and sidecar["levels"] == [0, 25, 50, 75]
    # Background processes read, preprocess and export while the network scores: the same files.
    assert cli.main(["-i", str(images), "-o", str(tmp_path / "maps_np2"), "-d", "1", "-c", "2d_small",
                     "-tr", "DisyreTrainer_debug", "--save_restorations", "-np", "2"]) == 0
    for case in ("test00", "test01"):
        assert np.array_equal(read_image(out / f"{case}.nii.gz")[0], read_image(tmp_path / "maps_np2" / f"{case}.nii.gz")[0])
        assert np.array_equal(read_image(out / "restorations" / f"{case}_0000.nii.gz")[0],
                              read_image(tmp_path / "maps_np2" / "restorations" / f"{case}_0000.nii.gz")[0])
    assert (out / "volume_scores.csv").read_text() == (tmp_path / "maps_np2" / "volume_scores.csv").read_text()
    assert cli.main(["-i", str(images), "-o", str(out), "-d", "1", "-c", "2d_small"]) == 2  # no DisyreTrainer model
