"""disyre_v2.api.AnomalyPredictor on a tiny trained model: the Python examples of
documentation/how_to/share_model.md run as written (so the page cannot drift), and the maps equal
disyre_v2_predict's voxel for voxel."""
from __future__ import annotations

import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from disyre_v2.api import AnomalyPredictor
from disyre_v2.errors import UserError
from disyre_v2.run import export_model as export_cli
from disyre_v2.run import predict as predict_cli
from disyre_v2.run import train as train_cli
from tests.trainer_fixtures import make_environment, make_preprocessed_dataset, point_environment_at

PAGE = Path(__file__).resolve().parents[1] / "documentation" / "how_to" / "share_model.md"


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", PAGE.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two seeds of fold 0 on Dataset001_Tiny, exported and unzipped as brains_2d_small/."""
    root = tmp_path_factory.mktemp("api")
    with pytest.MonkeyPatch.context() as patch:
        make_environment(patch, root)
        name = make_preprocessed_dataset(root, n_train=5, n_test=2)
        for seed in ("0", "1"):
            assert train_cli.main(["1", "2d_small", "0", "--steps", "2", "--seed", seed]) == 0
        assert export_cli.main(["-d", "1", "-c", "2d_small", "-o", str(root / "model.zip")]) == 0
    zipfile.ZipFile(root / "model.zip").extractall(root / "work" / "brains_2d_small")
    return root, name


@pytest.fixture
def env(trained, monkeypatch):
    root, name = trained
    point_environment_at(monkeypatch, root)
    return root, name


def test_the_pages_python_examples_run(env, monkeypatch):
    root, name = env
    blocks = python_blocks()
    assert len(blocks) == 3
    work = root / "work"
    case = sorted((root / "raw" / name / "imagesTs").glob("*_0000.nii.gz"))[0]
    shutil.copy(case, work / "case_0000.nii.gz")
    monkeypatch.chdir(work)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(PAGE), "exec"), namespace)
    # What the examples made is the command line's map of the same case.
    out = root / "cli_maps"
    assert predict_cli.main(["-i", str(root / "raw" / name / "imagesTs"), "-o", str(out), "-d", "1", "-c",
                             "2d_small"]) == 0
    expected = sitk.ReadImage(str(out / f"{case.name[:-len('_0000.nii.gz')]}.nii.gz"))
    written = sitk.ReadImage(str(work / "case_anomaly.nii.gz"))
    assert np.array_equal(sitk.GetArrayFromImage(written), sitk.GetArrayFromImage(expected))
    assert written.GetSpacing() == expected.GetSpacing() and written.GetOrigin() == expected.GetOrigin()
    assert np.array_equal(namespace["scores"], sitk.GetArrayFromImage(expected))
    assert namespace["predictor"].configuration == "2d_small" and namespace["predictor"].score == "ensemble"


def test_masks_channels_and_bad_inputs(env):
    root, name = env
    predictor = AnomalyPredictor.from_model_folder(root / "work" / "brains_2d_small", seeds=[0])
    assert len(predictor.predictor.models) == 1 and predictor.channel_names == ["T1"]
    image = sitk.ReadImage(str(sorted((root / "raw" / name / "imagesTs").glob("*_0000.nii.gz"))[0]))
    volume = sitk.GetArrayFromImage(image)
    half = np.zeros(volume.shape, np.uint8)
    half[:, : volume.shape[1] // 2] = 1
    mask = sitk.GetImageFromArray(half)
    mask.CopyInformation(image)
    anomaly = sitk.GetArrayFromImage(predictor.predict_image(image, mask=mask))
    assert anomaly.dtype == np.float32 and not anomaly[half == 0].any() and anomaly[half == 1].any()
    with pytest.raises(UserError, match="takes 1 channel"):
        predictor.predict_image([image, image])
    with pytest.raises(UserError, match="NaN"):
        predictor.predict_array(np.full(volume.shape, np.nan, np.float32), spacing=(2, 2, 2))
    with pytest.raises(UserError, match="shape"):
        predictor.predict_array(volume[0], spacing=(2, 2, 2))
    with pytest.raises(UserError, match="no such folder"):
        AnomalyPredictor.from_model_folder(root / "work" / "nowhere")
