"""disyre_v2_make_synthetic_dataset end to end: raw layout, integrity, sidecar, montage, determinism, errors."""
import json

import numpy as np
import pytest

from disyre_v2.dataset.integrity import verify_dataset_integrity
from disyre_v2.dataset_conversion.synthetic import builder
from disyre_v2.imageio.reader import read_label
from disyre_v2.run.make_synthetic_dataset import main

ARGS = ["-d", "7", "--n_train", "2", "--n_test", "3", "--kinds", "brats", "subtle", "--lesion_free_fraction", "0.34"]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """The same dataset written twice: once in one process, once with two workers."""
    bases = []
    for workers in ("1", "2"):
        base = tmp_path_factory.mktemp(f"raw_np{workers}")
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("DISYRE_raw", str(base))
            assert main(ARGS + ["-np", workers]) == 0
        bases.append(base / "Dataset007_Synthetic")
    return bases


def test_dataset_has_the_raw_layout_and_passes_the_integrity_check(two_runs):
    folder = two_runs[0]
    dataset_json = verify_dataset_integrity(folder, progress=False)
    assert dataset_json["channel_names"] == {"0": "T1", "1": "T2"}
    assert (dataset_json["numTraining"], dataset_json["numTest"]) == (2, 3)
    assert dataset_json["masksTr"] and dataset_json["masksTs"] and dataset_json["labelsTs"]
    sidecar = json.loads((folder / builder.SIDECAR_NAME).read_text())
    assert sidecar["test_kinds"] == {"synth_ts_0000": "brats", "synth_ts_0001": "subtle", "synth_ts_0002": "healthy"}
    labels = {case: read_label(folder / "labelsTs" / f"{case}.nii.gz") for case in sidecar["test_kinds"]}
    assert labels["synth_ts_0000"].max() == 4 and labels["synth_ts_0001"].max() == 1
    assert not labels["synth_ts_0002"].any()  # lesion-free test case: an empty label
    png = (folder / builder.MONTAGE_NAME).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) < 300_000
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_same_seed_gives_byte_identical_files_whatever_the_workers(two_runs):
    first, second = two_runs
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    assert len(files) == 2 * 2 + 3 * 2 + 2 + 3 + 3 + 3  # images, masks, labels, dataset.json, sidecar, montage
    for relative in files:
        assert (first / relative).read_bytes() == (second / relative).read_bytes(), relative


def test_existing_dataset_needs_overwrite(disyre_env, capsys):
    assert main(["-d", "8", "--n_train", "1", "--n_test", "0", "--no_montage"]) == 0
    assert main(["-d", "8", "--n_train", "1", "--n_test", "0", "--no_montage"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["-d", "8", "--n_train", "1", "--n_test", "0", "--no_montage", "--overwrite", "--seed", "1"]) == 0


def test_nothing_to_generate_gives_one_clear_error_and_writes_nothing(disyre_env, capsys):
    assert main(["-d", "9", "--n_train", "0", "--n_test", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Nothing to generate" in err
    assert not any(disyre_env["raw"].iterdir())


@pytest.mark.parametrize("extra, message", [
    (["--n_train", "-1"], "--n_train: must be an integer >= 0, got -1"),
    (["--seed", "-3"], "--seed: must be an integer >= 0, got -3"),
    (["-np", "0"], "-np: must be an integer >= 1, got 0"),
    (["--lesion_free_fraction", "1.5"], "--lesion_free_fraction: must be a number in [0, 1], got 1.5"),
])
def test_bad_numbers_are_refused_by_argparse_before_anything_is_written(disyre_env, capsys, extra, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["-d", "9"] + extra)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not any(disyre_env["raw"].iterdir())


@pytest.mark.parametrize("extra, message", [(["--kinds", "flair"], "invalid choice: 'flair'"),
                                            (["--spacing", "3"], "invalid choice: 3")])
def test_argparse_refuses_unknown_choices(disyre_env, capsys, extra, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["-d", "9"] + extra)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_missing_raw_folder_variable_is_explained(monkeypatch, capsys):
    monkeypatch.delenv("DISYRE_raw", raising=False)
    assert main(["-d", "9", "--n_train", "1", "--n_test", "0"]) == 2
    assert "DISYRE_raw is not set" in capsys.readouterr().err


def test_a_failure_half_way_leaves_no_dataset(disyre_env, monkeypatch):
    calls = []

    def failing(spec):
        calls.append(spec)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real(spec)

    real = builder.generate_case
    monkeypatch.setattr(builder, "generate_case", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        builder.make_synthetic_dataset(9, n_train=3, n_test=0, montage=False)
    assert not any(disyre_env["raw"].iterdir())


def test_labels_and_images_share_the_grid_of_the_template(two_runs):
    from disyre_v2.imageio.reader import read_case

    image, geometry = read_case([two_runs[0] / "imagesTs" / f"synth_ts_0000_000{c}.nii.gz" for c in (0, 1)])
    assert image.shape == (2, 95, 117, 99) and geometry.spacing == (2.0, 2.0, 2.0)
    assert np.all(image >= 0)
