"""ONNX export of the restoration networks: onnxruntime on CPU gives torch's output to 1e-4."""
import json

import numpy as np
import pytest
import torch

# The test extra installs both (setup.py); an installation without the onnx extra skips this file.
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from disyre_v2.errors import UserError  # noqa: E402
from disyre_v2.inference.model_loading import load_models  # noqa: E402
from disyre_v2.model_sharing.onnx_export import export_onnx  # noqa: E402
from disyre_v2.training.run_training import train  # noqa: E402
from tests.trainer_fixtures import make_preprocessed_dataset, point_environment_at  # noqa: E402


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A conditional model with two seeds and an unconditional one, trained for 6 steps on tiny data."""
    root = tmp_path_factory.mktemp("onnx")
    with pytest.MonkeyPatch.context() as patch:
        for sub in ("raw", "pre", "res"):
            (root / sub).mkdir(exist_ok=True)
        point_environment_at(patch, root)
        make_preprocessed_dataset(root, channels=("T1", "T2"))
        conditional = train(1, "2d_small", "all", trainer="DisyreTrainer_debug", seed=0).parent
        train(1, "2d_small", "all", trainer="DisyreTrainer_debug", seed=1)
        unconditional = train(1, "2d_small", "all", trainer="DisyreTrainerUnconditional_debug", seed=0).parent
    return conditional, unconditional


def onnx_matches_torch(path, network, conditional: bool, shapes) -> None:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    assert names == (["x", "t"] if conditional else ["x"])
    generator = torch.Generator().manual_seed(0)
    for batch, height, width in shapes:
        x = torch.randn(batch, network.in_channels, height, width, generator=generator)
        t = torch.randint(0, 100, (batch,), generator=generator)
        with torch.no_grad():
            expected = network(x, t if conditional else None).numpy()
        feeds = {"x": x.numpy(), "t": t.numpy()} if conditional else {"x": x.numpy()}
        (got,) = session.run(None, feeds)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4, err_msg=f"batch {batch}, {height}x{width}")


def test_conditional_network_matches_torch_for_several_batch_sizes(models, tmp_path):
    folder = models[0]
    path = export_onnx(folder, "2d_small", ["fold_all_seed_0"], tmp_path / "model.onnx")
    assert path == tmp_path / "model.onnx" and path.is_file()
    network = load_models(folder, "2d_small", folds=["all"], seeds=[0])[0].network
    onnx_matches_torch(path, network, True, [(1, 16, 16), (3, 16, 16), (8, 16, 16), (5, 32, 24)])
    metadata = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert metadata["disyre_v2_run"] == "fold_all_seed_0" and json.loads(metadata["conditional"]) is True
    assert metadata["configuration"] == "2d_small"


def test_several_runs_give_one_file_each_and_unconditional_has_no_level_input(models, tmp_path):
    conditional, unconditional = models
    folder = export_onnx(conditional, "2d_small", [("all", 0), ("all", 1)], tmp_path / "model.onnx")
    assert sorted(p.name for p in folder.iterdir()) == ["fold_all_seed_0.onnx", "fold_all_seed_1.onnx"]
    seed1 = load_models(conditional, "2d_small", folds=["all"], seeds=[1])[0].network
    onnx_matches_torch(folder / "fold_all_seed_1.onnx", seed1, True, [(2, 16, 16), (7, 16, 16)])
    path = export_onnx(unconditional, "2d_small", ["fold_all_seed_0"], tmp_path / "unconditional.onnx")
    network = load_models(unconditional, "2d_small")[0].network
    onnx_matches_torch(path, network, False, [(1, 16, 16), (4, 16, 16)])


def test_bad_run_names_are_refused(models, tmp_path):
    with pytest.raises(UserError, match="not a run name"):
        export_onnx(models[0], "2d_small", ["seed_0"], tmp_path / "x.onnx")
    with pytest.raises(UserError, match="not in the model's plans"):
        export_onnx(models[0], "3d", ["fold_all_seed_0"], tmp_path / "x.onnx")


def test_predictor_backend_onnxruntime_gives_the_torch_maps(models):
    from disyre_v2.inference.predictor import DisyrePredictor

    folder = models[0]  # two seeds: the predictor averages both, each run by its own session
    with_torch = DisyrePredictor.from_model_folder(folder, "2d_small")
    with_onnx = DisyrePredictor.from_model_folder(folder, "2d_small", backend="onnxruntime")
    assert len(with_onnx.models) == 2 and with_onnx.describe()["backend"] == "onnxruntime"
    assert "backend" not in with_torch.describe()
    rng = np.random.default_rng(0)
    data = rng.standard_normal((2, 6, 20, 18)).astype(np.float32)
    mask = np.zeros((6, 20, 18), bool)
    mask[:, 3:17, 3:15] = True
    expected, _ = with_torch.predict_preprocessed(data, mask)
    got, _ = with_onnx.predict_preprocessed(data, mask)
    assert expected.std() > 0
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)


def test_backend_onnxruntime_refuses_what_it_cannot_run(models):
    from disyre_v2.inference.predictor import DisyrePredictor

    with pytest.raises(UserError, match="runs fp32 on the CPU only, not with --precision bf16"):
        DisyrePredictor.from_model_folder(models[0], "2d_small", backend="onnxruntime", precision="bf16")
    with pytest.raises(UserError, match="not with --compile on"):
        DisyrePredictor.from_model_folder(models[0], "2d_small", backend="onnxruntime", compile=True)
