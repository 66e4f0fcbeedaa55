"""disyre_v2_plan_and_preprocess end to end on a tiny two-channel dataset."""
import json

import numpy as np
import pytest

from disyre_v2.imageio.writer import write_mask
from disyre_v2.run.plan_and_preprocess import main
from tests.planning_test_data import SHAPE, geometry_for, write_raw_dataset

CONFIGS = ("2d", "2d_small")


def test_help_documents_every_flag(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["-h"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("-d", "-c", "-np", "--verify_dataset_integrity", "--clean", "--no_preprocessing", "--no_progress", "-v"):
        assert flag in text


def test_plan_and_preprocess_writes_the_whole_store_and_reruns_reuse_it(disyre_env, capsys):
    write_raw_dataset(disyre_env["raw"], dataset_id=3, n_train=5, n_test=1, channels=("T1", "T2"),
                      spacing=(1.0, 1.0, 1.5))
    assert main(["-d", "3", "-np", "1", "--no_progress", "--verify_dataset_integrity"]) == 0
    out = disyre_env["preprocessed"] / "Dataset003_Tiny"
    assert "Plans and preprocessed data are in" in capsys.readouterr().out
    for name in ("dataset.json", "dataset_fingerprint.json", "plans.json", "splits_final.json"):
        assert (out / name).is_file()
    plans = json.loads((out / "plans.json").read_text())
    assert sorted(plans["configurations"]) == list(CONFIGS)
    assert plans["channel_names"] == {"0": "T1", "1": "T2"}
    assert plans["configurations"]["2d_small"]["spacing"] == [2.0, 2.0, 2.0]
    fingerprint = json.loads((out / "dataset_fingerprint.json").read_text())
    assert fingerprint["case_ids"] == [f"case{i:02d}" for i in range(5)]  # training cases only
    assert plans["configurations"]["2d"]["tissue_centroids"] == [
        fingerprint["tissue_clusters"]["channels"][k]["centroids"] for k in ("0", "1")]
    splits = json.loads((out / "splits_final.json").read_text())
    assert len(splits) == 5 and sorted(c for f in splits for c in f["val"]) == fingerprint["case_ids"]
    for config in CONFIGS:
        files = sorted(p.name for p in (out / config).iterdir())
        assert files == sorted(f"case{i:02d}{s}" for i in range(5) for s in (".json", ".npy", "_mask.npy"))
        data = np.load(out / config / "case02.npy")
        mask = np.load(out / config / "case02_mask.npy")
        props = json.loads((out / config / "case02.json").read_text())
        assert data.dtype == np.float32 and data.shape == (2,) + tuple(props["shape_preprocessed"])
        assert mask.dtype == bool and (data[:, ~mask] == 0).all() and data.max() <= 1.0

    # Re-running keeps hand edits of the plans and reuses finished cases.
    plans["configurations"]["2d"]["batch"]["n_volumes"] = 3
    (out / "plans.json").write_text(json.dumps(plans))
    stamp = (out / "2d" / "case00.npy").stat().st_mtime_ns
    assert main(["-d", "Dataset003_Tiny", "-c", "2d", "-np", "1", "--no_progress"]) == 0
    assert json.loads((out / "plans.json").read_text())["configurations"]["2d"]["batch"]["n_volumes"] == 3
    assert (out / "2d" / "case00.npy").stat().st_mtime_ns == stamp

    # --clean re-plans (the hand edit goes) and redoes the cases; the splits stay.
    custom = [{"train": ["case00", "case01"], "val": ["case02"]}]
    (out / "splits_final.json").write_text(json.dumps(custom))
    assert main(["-d", "3", "-c", "2d", "-np", "1", "--no_progress", "--clean"]) == 0
    replanned = json.loads((out / "plans.json").read_text())
    assert replanned["configurations"]["2d"]["batch"]["n_volumes"] == 8
    assert (out / "2d" / "case00.npy").stat().st_mtime_ns != stamp
    assert json.loads((out / "splits_final.json").read_text()) == custom


def test_integrity_check_stops_with_its_messages(disyre_env, capsys):
    folder = write_raw_dataset(disyre_env["raw"], n_train=3)
    (folder / "masksTr" / "case01.nii.gz").unlink()
    assert main(["-d", "1", "--verify_dataset_integrity", "--no_progress"]) == 2
    err = capsys.readouterr().err
    assert "failed the integrity check" in err and "case01.nii.gz is missing" in err
    assert not (disyre_env["preprocessed"] / "Dataset001_Tiny").exists()


def test_bad_case_without_the_integrity_check_names_the_file(disyre_env, capsys):
    folder = write_raw_dataset(disyre_env["raw"], n_train=3)
    write_mask(np.zeros(SHAPE, np.uint8), geometry_for(), folder / "masksTr" / "case02.nii.gz")
    assert main(["-d", "1", "-np", "1", "--no_progress"]) == 2
    assert f"{folder / 'masksTr' / 'case02.nii.gz'} is an empty brain mask" in capsys.readouterr().err


def test_unknown_dataset_gives_the_error_of_resolve_dataset_name(disyre_env, capsys):
    write_raw_dataset(disyre_env["raw"], n_train=3)
    assert main(["-d", "7", "--no_progress"]) == 2
    err = capsys.readouterr().err
    assert "No dataset with id 007" in err and "Existing datasets: Dataset001_Tiny" in err


def test_changed_dataset_asks_for_clean(disyre_env, capsys):
    folder = write_raw_dataset(disyre_env["raw"], n_train=3)
    assert main(["-d", "1", "--no_preprocessing", "--no_progress", "-np", "1"]) == 0
    assert not (disyre_env["preprocessed"] / "Dataset001_Tiny" / "2d").exists()
    for path in folder.glob("*/case02*"):
        path.unlink()
    dataset_json = json.loads((folder / "dataset.json").read_text())
    dataset_json["numTraining"] = 2
    (folder / "dataset.json").write_text(json.dumps(dataset_json))
    assert main(["-d", "1", "--no_progress"]) == 2
    assert "the dataset changed since planning. Re-plan with --clean" in capsys.readouterr().err
    # --clean re-plans, but a splits file naming the removed case is not silently replaced.
    assert main(["-d", "1", "--no_progress", "--clean", "-np", "1"]) == 2
    assert "splits_final.json names case(s) that are not training cases of the dataset: case02" in capsys.readouterr().err
    (disyre_env["preprocessed"] / "Dataset001_Tiny" / "splits_final.json").unlink()
    assert main(["-d", "1", "--no_progress", "--clean", "-np", "1"]) == 0
    fingerprint = json.loads((disyre_env["preprocessed"] / "Dataset001_Tiny" / "dataset_fingerprint.json").read_text())
    assert fingerprint["case_ids"] == ["case00", "case01"]


def test_a_configuration_added_by_hand_is_preprocessed_as_it_stands(disyre_env, capsys):
    write_raw_dataset(disyre_env["raw"], n_train=3)
    assert main(["-d", "1", "-c", "3d", "--no_progress"]) == 2
    assert "Unknown configuration(s) 3d; available: 2d, 2d_small" in capsys.readouterr().err
    assert main(["-d", "1", "-c", "2d", "--no_preprocessing", "--no_progress", "-np", "1"]) == 0
    out = disyre_env["preprocessed"] / "Dataset001_Tiny"
    plans = json.loads((out / "plans.json").read_text())
    custom = dict(plans["configurations"]["2d"], data_identifier="2d_1p5mm", spacing=[1.5, 1.5, 1.5], resample=True)
    plans["configurations"]["2d_1p5mm"] = custom
    (out / "plans.json").write_text(json.dumps(plans))
    assert main(["-d", "1", "-c", "2d_1p5mm", "--no_progress", "-np", "1"]) == 0
    props = json.loads((out / "2d_1p5mm" / "case00.json").read_text())
    assert props["resampled"] is True and props["preprocessed_geometry"]["spacing"] == [1.5, 1.5, 1.5]


@pytest.mark.parametrize("first, second", [("2d_small", "2d"), ("2d", "2d_small")])
def test_plans_hold_every_configuration_and_c_only_chooses_what_is_preprocessed(disyre_env, first, second):
    write_raw_dataset(disyre_env["raw"], dataset_id=5, n_train=3, n_test=1, spacing=(1.0, 1.0, 1.5))
    out = disyre_env["preprocessed"] / "Dataset005_Tiny"
    assert main(["-d", "5", "-c", first, "-np", "1", "--no_progress"]) == 0
    plans_text = (out / "plans.json").read_text()
    assert sorted(json.loads(plans_text)["configurations"]) == sorted(CONFIGS)  # both planned at once
    assert (out / first).is_dir() and not (out / second).exists()  # only the one asked for is preprocessed
    stamp = (out / first / "case00.npy").stat().st_mtime_ns
    assert main(["-d", "5", "-c", second, "-np", "1", "--no_progress"]) == 0
    assert (out / "plans.json").read_text() == plans_text  # not re-planned, nothing changed
    assert (out / second / "case00.npy").is_file()
    assert (out / first / "case00.npy").stat().st_mtime_ns == stamp
