"""Bad inputs and faults, tried as a hostile new user would, through the commands themselves.

Every case asserts the exit status (2 for a user error, argparse's status too), the key words of
the one-line message, and that nothing partial is left behind. The kill -9 cases run real processes.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from disyre_v2.run import evaluate as evaluate_cli
from disyre_v2.run import plan_and_preprocess as plan_cli
from disyre_v2.run import predict as predict_cli
from disyre_v2.run import train as train_cli
from tests.nifti_factory import write_nifti
from tests.planning_test_data import write_raw_dataset
from tests.trainer_fixtures import make_preprocessed_dataset, point_environment_at

USER_ERROR = 2


def run(main, argv, capsys) -> tuple[int, str]:
    """Exit status and stderr of a command; argparse's SystemExit counts as its status."""
    try:
        status = main([str(a) for a in argv])
    except SystemExit as exit_:
        status = exit_.code
    err = capsys.readouterr().err
    return status, err


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*") if ".tmp" in p.name] if folder.exists() else []


# -- a trained tiny model, shared by the prediction cases -----------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_inputs")
    with pytest.MonkeyPatch.context() as patch:
        for key, sub in (("DISYRE_raw", "raw"), ("DISYRE_preprocessed", "pre"), ("DISYRE_results", "res")):
            (root / sub).mkdir(exist_ok=True)
            patch.setenv(key, str(root / sub))
        patch.setenv("DISYRE_n_proc_DA", "0")
        name = make_preprocessed_dataset(root, n_test=3)
        assert train_cli.main(["1", "2d_small", "all", "-tr", "DisyreTrainer_debug"]) == 0
    return root, name


@pytest.fixture
def env(trained, monkeypatch, tmp_path):
    root, name = trained
    point_environment_at(monkeypatch, root)
    return root, name


def model_folder(root: Path, name: str) -> Path:
    return root / "res" / name / "DisyreTrainer_debug__DisyrePlans__2d_small"


# -- planning ------------------------------------------------------------------------------------
def test_an_undeclared_channel_file_stops_planning_naming_it(disyre_env, capsys):
    folder = write_raw_dataset(disyre_env["raw"], 4, n_train=2)
    extra = folder / "imagesTr" / "case00_0001.nii.gz"
    extra.write_bytes((folder / "imagesTr" / "case00_0000.nii.gz").read_bytes())
    status, err = run(plan_cli.main, ["-d", "4", "-np", "1", "--no_progress"], capsys)
    line = one_error_line(err)
    assert status == USER_ERROR and "case00_0001.nii.gz" in line and "declares 1 channel" in line
    assert not (disyre_env["preprocessed"] / folder.name).exists()  # nothing half-planned


@pytest.mark.parametrize("kind", ["nan", "truncated"])
def test_a_bad_training_image_stops_planning_and_leaves_no_dataset_folder(disyre_env, capsys, kind):
    import nibabel

    folder = write_raw_dataset(disyre_env["raw"], 4, n_train=3)
    bad = folder / "imagesTr" / "case01_0000.nii.gz"
    if kind == "nan":
        image = nibabel.load(str(bad))
        data = np.asarray(image.dataobj, dtype=np.float32)
        data[5, 6, 7] = np.nan
        nibabel.save(nibabel.Nifti1Image(data, image.affine, image.header), str(bad))
    else:
        bad.write_bytes(bad.read_bytes()[:300])
    status, err = run(plan_cli.main, ["-d", "4", "-np", "1", "--no_progress"], capsys)
    line = one_error_line(err)
    assert status == USER_ERROR and "case01_0000.nii.gz" in line
    assert "NaN or infinite" in line if kind == "nan" else "truncated" in line
    assert not (disyre_env["preprocessed"] / folder.name).exists()  # no dataset.json, no fingerprint
    assert not any(disyre_env["preprocessed"].iterdir())


@pytest.mark.parametrize("kind", ["file", "impossible"])
def test_a_preprocessed_base_that_is_a_file_or_cannot_be_made_is_refused_before_work(disyre_env, monkeypatch,
                                                                                      tmp_path, capsys, kind):
    write_raw_dataset(disyre_env["raw"], 4, n_train=2)
    target = tmp_path / "a_file"
    target.write_text("x")
    monkeypatch.setenv("DISYRE_preprocessed", str(target if kind == "file" else target / "sub"))
    status, err = run(plan_cli.main, ["-d", "4", "-np", "1", "--no_progress"], capsys)
    line = one_error_line(err)
    assert status == USER_ERROR and str(target) in line
    assert ("is a file" in line) if kind == "file" else ("cannot be created" in line)


def test_a_truncated_preprocessed_array_is_named_and_redone_by_planning(disyre_env, monkeypatch, capsys):
    monkeypatch.setenv("DISYRE_n_proc_DA", "0")
    name = make_preprocessed_dataset(disyre_env["raw"].parent)
    array = disyre_env["preprocessed"] / name / "2d_small" / "case01.npy"
    array.write_bytes(array.read_bytes()[:-100])
    status, err = run(train_cli.main, ["1", "2d_small", "all", "-tr", "DisyreTrainer_debug"], capsys)
    line = one_error_line(err)
    assert status == USER_ERROR and "case01.npy" in line and "truncated or corrupt" in line
    assert not (disyre_env["results"] / name).exists() or not any((disyre_env["results"] / name).rglob("fold_*"))
    status, _ = run(plan_cli.main, ["-d", "1", "-c", "2d_small", "-np", "1", "--no_progress"], capsys)
    assert status == 0
    shape = json.loads((array.parent / "case01.json").read_text())["shape_preprocessed"]
    assert np.load(array).shape[1:] == tuple(shape)  # redone, not reused


def test_a_plans_file_with_invalid_json_is_named(env, capsys, tmp_path, monkeypatch):
    root, name = env
    pre = tmp_path / "pre"
    import shutil

    shutil.copytree(root / "pre", pre)
    monkeypatch.setenv("DISYRE_preprocessed", str(pre))
    monkeypatch.setenv("DISYRE_results", str(tmp_path / "res"))
    (pre / name / "plans.json").write_text('{"configurations": {')
    status, err = run(train_cli.main, ["1", "2d_small", "all"], capsys)
    line = one_error_line(err)
    assert status == USER_ERROR and "plans.json" in line and "not valid JSON" in line
    assert not (tmp_path / "res").exists() or not any((tmp_path / "res").rglob("fold_*"))


@pytest.mark.parametrize("argv, variable, words", [
    (["1", "3d_huge", "all"], None, "Configuration '3d_huge' is not in the plans"),
    (["1", "2d_small", "all"], "abc", "DISYRE_n_proc_DA='abc' is not an integer"),
])
def test_a_run_that_cannot_start_leaves_no_folder(env, monkeypatch, tmp_path, capsys, argv, variable, words):
    monkeypatch.setenv("DISYRE_results", str(tmp_path / "res"))
    if variable is not None:
        monkeypatch.setenv("DISYRE_n_proc_DA", variable)
    status, err = run(train_cli.main, argv, capsys)
    assert status == USER_ERROR and words in one_error_line(err)
    assert not (tmp_path / "res").exists() or not any((tmp_path / "res").rglob("*.txt"))


def test_splits_naming_an_unknown_case_say_so(env, tmp_path, monkeypatch, capsys):
    root, name = env
    import shutil

    shutil.copytree(root / "pre", tmp_path / "pre")
    monkeypatch.setenv("DISYRE_preprocessed", str(tmp_path / "pre"))
    monkeypatch.setenv("DISYRE_results", str(tmp_path / "res"))
    splits_path = tmp_path / "pre" / name / "splits_final.json"
    splits = json.loads(splits_path.read_text())
    splits[0]["train"].append("case99")
    splits_path.write_text(json.dumps(splits))
    status, err = run(train_cli.main, ["1", "2d_small", "0", "-tr", "DisyreTrainer_debug"], capsys)
    line = one_error_line(err)
    assert status == USER_ERROR and "case99" in line and "not training cases" in line and "splits_final.json" in line


# -- training flags and faults ----------------------------------------------------------------------
@pytest.mark.parametrize("flag, value, words", [
    ("--steps", "-5", "must be an integer >= 1, got -5"),
    ("--steps", "0", "must be an integer >= 1, got 0"),
    ("--val_every", "0", "must be an integer >= 1"),
    ("--time_budget", "-10", "must be a finite number > 0"),
    ("--seed", "x", "must be an integer >= 0"),
])
def test_numeric_training_flags_are_checked_by_argparse(env, capsys, flag, value, words):
    status, err = run(train_cli.main, ["1", "2d_small", "all", flag, value], capsys)
    assert status == USER_ERROR and words in err and flag in err


def test_a_nan_loss_stops_training_naming_the_step_and_keeps_the_last_good_checkpoint(env, tmp_path, monkeypatch,
                                                                                        capsys):
    root, name = env
    import shutil

    shutil.copytree(root / "pre", tmp_path / "pre")
    monkeypatch.setenv("DISYRE_preprocessed", str(tmp_path / "pre"))
    monkeypatch.setenv("DISYRE_results", str(tmp_path / "res"))
    assert run(train_cli.main, ["1", "2d_small", "all", "-tr", "DisyreTrainer_debug", "--steps", "3"], capsys)[0] == 0
    run_folder = tmp_path / "res" / name / "DisyreTrainer_debug__DisyrePlans__2d_small" / "fold_all_seed_0"
    latest = run_folder / "checkpoint_latest.pth"
    before = latest.read_bytes()
    (run_folder / "checkpoint_final.pth").unlink()
    for array in (tmp_path / "pre" / name / "2d_small").glob("case*[0-9].npy"):
        data = np.load(array)
        data[:] = np.nan
        np.save(array, data)
    status, err = run(train_cli.main, ["1", "2d_small", "all", "-tr", "DisyreTrainer_debug", "--steps", "6", "--c"],
                      capsys)
    line = one_error_line(err)
    assert status == USER_ERROR and "loss is nan at step 4" in line and "NaN or infinite values" in line
    assert latest.read_bytes() == before and not (run_folder / "checkpoint_final.pth").exists()
    # A fresh run that fails before its first checkpoint leaves no run folder at all.
    shutil.rmtree(run_folder)
    status, err = run(train_cli.main, ["1", "2d_small", "all", "-tr", "DisyreTrainer_debug"], capsys)
    assert status == USER_ERROR and "loss is nan at step 1" in one_error_line(err)
    assert not run_folder.exists()


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True).stdout.strip()
    return bool(status) and not status.startswith("Z")


def _survivors(pids, timeout: float = 20.0) -> list:
    """The processes still alive after waiting up to ``timeout`` seconds for all of them to end."""
    deadline = time.time() + timeout
    while time.time() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.1)
    return [pid for pid in pids if _alive(pid)]


def test_kill_9_of_training_takes_its_augmentation_workers_with_it(env, tmp_path):
    root, name = env
    environment = dict(os.environ, DISYRE_results=str(tmp_path / "res"), DISYRE_n_proc_DA="2")
    process = subprocess.Popen([sys.executable, "-m", "disyre_v2.run.train", "1", "2d_small", "all", "--steps",
                                "100000", "-tr", "DisyreTrainer_debug"], env=environment,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        workers = []
        while time.time() < deadline and len(workers) < 2:
            workers = [p for p in _children(process.pid) if _alive(p)]
            time.sleep(0.5)
        assert len(workers) >= 2, "the augmentation workers never started"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert not _survivors(workers), "orphaned augmentation workers"


# -- prediction ------------------------------------------------------------------------------------
def predict_argv(root: Path, name: str, out: Path, *extra) -> list:
    return ["-i", root / "raw" / name / "imagesTs", "-o", out, "-d", "1", "-c", "2d_small",
            "-tr", "DisyreTrainer_debug", *extra]


@pytest.mark.parametrize("flag, value, words", [
    ("--batch_windows", "-4", "must be an integer >= 1"),
    ("--multistep_step", "-25", "must be an integer in 1..99"),
    ("--multistep_step", "0", "must be an integer in 1..99"),
    ("--tile_step", "0", "must be a number in (0, 1]"),
    ("--num_parts", "0", "must be an integer >= 1"),
    ("--part_id", "-1", "must be an integer >= 0"),
])
def test_numeric_prediction_flags_are_checked_before_anything_is_written(env, tmp_path, capsys, flag, value, words):
    root, name = env
    out = tmp_path / "maps"
    status, err = run(predict_cli.main, predict_argv(root, name, out, flag, value), capsys)
    assert status == USER_ERROR and words in err and flag in err
    assert not out.exists()


def test_a_part_id_outside_the_parts_and_an_output_that_is_a_file_are_refused(env, tmp_path, capsys):
    root, name = env
    status, err = run(predict_cli.main, predict_argv(root, name, tmp_path / "m", "--num_parts", "2", "--part_id", "2"),
                      capsys)
    assert status == USER_ERROR and "--part_id 2 is not one of the 2 part(s)" in one_error_line(err)
    target = tmp_path / "maps.nii.gz"
    target.write_text("not a folder")
    status, err = run(predict_cli.main, predict_argv(root, name, target), capsys)
    assert status == USER_ERROR and "-o must be a folder, but it is a file" in one_error_line(err)
    assert target.read_text() == "not a folder"


def test_a_stale_temporary_of_a_killed_prediction_is_removed_by_the_next_run(env, tmp_path, capsys):
    root, name = env
    out = tmp_path / "maps"
    assert run(predict_cli.main, predict_argv(root, name, out), capsys)[0] == 0
    reference = {p.name: p.read_bytes() for p in out.glob("*.nii.gz")}
    # The temporaries a kill -9 in mid-write leaves: their writer (a finished process) is gone.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    from disyre_v2.imageio.atomic import _host

    stale = out / f".test00.nii.gz.{_host()}-{dead.stdout.strip()}-0123abcd.tmp.nii.gz"
    stale.write_bytes(b"half a file")
    (out / "test01.nii.gz").unlink()
    (out / ".test01.json").unlink()
    assert run(predict_cli.main, predict_argv(root, name, out, "--continue"), capsys)[0] == 0
    assert not temporaries(out)
    assert {p.name: p.read_bytes() for p in out.glob("*.nii.gz")} == reference


def test_kill_9_during_prediction_then_continue_gives_the_same_maps(env, tmp_path, capsys):
    root, name = env
    clean = tmp_path / "clean"
    assert run(predict_cli.main, predict_argv(root, name, clean), capsys)[0] == 0
    out = tmp_path / "maps"
    argv = [str(a) for a in predict_argv(root, name, out)]
    process = subprocess.Popen([sys.executable, "-m", "disyre_v2.run.predict", *argv], env=dict(os.environ),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.glob("*.nii.gz")) and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert run(predict_cli.main, predict_argv(root, name, out, "--continue"), capsys)[0] == 0
    assert not temporaries(out)
    for map_path in clean.glob("*.nii.gz"):
        assert (out / map_path.name).read_bytes() == map_path.read_bytes()


def test_kill_9_during_prediction_with_background_processes_leaves_no_worker(env, tmp_path, capsys):
    root, name = env
    out = tmp_path / "maps"
    argv = [str(a) for a in predict_argv(root, name, out)] + ["-np", "2"]
    process = subprocess.Popen([sys.executable, "-m", "disyre_v2.run.predict", *argv], env=dict(os.environ),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, children = time.time() + 120, []
    while time.time() < deadline and process.poll() is None and len(children) < 3:
        children = _children(process.pid)  # the two workers and multiprocessing's resource tracker
        time.sleep(0.05)
    assert len(children) >= 3, "the background processes never started"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not _survivors(children), "background processes outlived the killed predictor"
    assert run(predict_cli.main, predict_argv(root, name, out, "--continue"), capsys)[0] == 0
    assert not temporaries(out)


def test_stray_and_unfinished_run_folders_are_skipped_with_a_warning(env, tmp_path, capsys, caplog):
    root, name = env
    folder = model_folder(root, name)
    backup = folder / "fold_all_seed_0_backup"
    unfinished = folder / "fold_0_seed_3"
    backup.mkdir()
    unfinished.mkdir()
    (unfinished / "training_log.txt").write_text("")
    try:
        status, err = run(predict_cli.main, predict_argv(root, name, tmp_path / "maps"), capsys)
        assert status == 0, err
        assert "Ignoring" in caplog.text and "fold_all_seed_0_backup" in caplog.text
        assert "Skipping" in caplog.text and "fold_0_seed_3" in caplog.text
        # Asked for by seed, the unfinished run is an error.
        status, err = run(predict_cli.main, predict_argv(root, name, tmp_path / "m2", "--seeds", "3"), capsys)
        assert status == USER_ERROR and "fold_0_seed_3" in one_error_line(err) and "no checkpoint_final.pth" in err
        # A seed that was never trained, asked for next to one that was, is an error too (not a
        # silent average of fewer models).
        status, err = run(predict_cli.main, predict_argv(root, name, tmp_path / "m3", "--seeds", "0", "7"), capsys)
        line = one_error_line(err)
        assert status == USER_ERROR and "no run for seed(s) 7" in line and "fold all seed 0" in line
        assert not (tmp_path / "m3").exists() or not any((tmp_path / "m3").iterdir())
    finally:
        backup.rmdir()
        (unfinished / "training_log.txt").unlink()
        unfinished.rmdir()


@pytest.mark.parametrize("content, words", [
    (b"", "could not be read"),
    (b"garbage that is no checkpoint", "could not be read"),
])
def test_garbage_checkpoints_are_refused_naming_the_file(env, tmp_path, capsys, content, words):
    root, name = env
    import shutil

    results = tmp_path / "res"
    shutil.copytree(root / "res", results)
    os.environ["DISYRE_results"] = str(results)
    checkpoint = model_folder(results.parent, name).parent.parent.parent / "res" / name
    path = results / name / "DisyreTrainer_debug__DisyrePlans__2d_small" / "fold_all_seed_0" / "checkpoint_final.pth"
    path.write_bytes(content)
    status, err = run(predict_cli.main, predict_argv(root, name, tmp_path / "maps"), capsys)
    line = one_error_line(err)
    assert status == USER_ERROR and "checkpoint_final.pth" in line
    assert not list((tmp_path / "maps").glob("*.nii.gz")) if (tmp_path / "maps").exists() else True
    del checkpoint


class _ForeignObject:
    """A class of another program: torch's safe loader refuses it (as it does an old-format checkpoint)."""


def _unsafe_checkpoint(kind: str, path: Path, marker: Path) -> None:
    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    if kind == "pickled code":
        torch.save({"network": Exploit()}, path)
    elif kind == "foreign class":
        torch.save({"network": _ForeignObject(), "format_version": 1}, path)
    else:  # a plain pickle of an old tool (protocol 4: torch warns about it before failing)
        import pickle

        with open(path, "wb") as file:
            pickle.dump({"network": {"weight": len}}, file, protocol=4)


def _refused_without_unsafe_advice(status: int, err: str, warned: list) -> str:
    line = one_error_line(err)
    assert status == USER_ERROR and err.splitlines()[0] == line  # no warning line before the error
    assert "checkpoint" in line and "cannot be loaded safely" in line and "re-train" in line
    assert "weights_only" not in err and "weights_only" not in line
    assert not [w for w in warned if "torch" in str(w.filename)], [str(w.message) for w in warned]
    return line


@pytest.mark.parametrize("kind", ["pickled code", "foreign class", "old pickle"])
def test_an_unsafe_checkpoint_never_runs_its_code_and_is_refused_without_torchs_advice(env, tmp_path, capsys, kind):
    """Predicting with it, and continuing its training with --c: one line saying the file is no disyre_v2
    checkpoint that can be loaded safely, never torch's advice to load it with weights_only=False."""
    import shutil
    import warnings

    root, name = env
    results = tmp_path / "res"
    shutil.copytree(root / "res", results)
    os.environ["DISYRE_results"] = str(results)
    marker = tmp_path / "pwned"
    run_folder = results / name / "DisyreTrainer_debug__DisyrePlans__2d_small" / "fold_all_seed_0"
    for checkpoint in ("checkpoint_final.pth", "checkpoint_latest.pth"):
        _unsafe_checkpoint(kind, run_folder / checkpoint, marker)
    before = sorted(p.name for p in run_folder.iterdir())
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        status, err = run(predict_cli.main, predict_argv(root, name, tmp_path / "maps"), capsys)
        assert "checkpoint_final.pth" in _refused_without_unsafe_advice(status, err, warned)
        status, err = run(train_cli.main, ["1", "2d_small", "all", "-tr", "DisyreTrainer_debug", "--steps", "6", "--c"],
                          capsys)
        assert "checkpoint_latest.pth" in _refused_without_unsafe_advice(status, err, warned)
    assert not marker.exists()
    assert not list((tmp_path / "maps").glob("*.nii.gz")) if (tmp_path / "maps").exists() else True
    assert sorted(p.name for p in run_folder.iterdir()) == before


def test_a_checkpoint_without_a_network_or_with_other_weights_is_refused_in_whole_words(tmp_path):
    from disyre_v2.inference.model_loading import _mismatch, load_models
    from disyre_v2.training.trainer.checkpoint import IncompatibleCheckpointError, save_checkpoint

    run_folder = tmp_path / "model" / "fold_all_seed_0"
    run_folder.mkdir(parents=True)
    save_checkpoint({"configuration": "2d_small", "step": 3}, run_folder / "checkpoint_final.pth")
    with pytest.raises(IncompatibleCheckpointError, match=r"the checkpoint lacks network_plans, conditional, network: "
                                                          r"it is not a disyre_v2 checkpoint.*checkpoint_final\.pth"):
        load_models(tmp_path / "model", "2d_small")
    small, other = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2)), torch.nn.Sequential(
        torch.nn.Linear(3, 5))
    with pytest.raises(RuntimeError) as error:
        small.load_state_dict(other.state_dict())
    assert _mismatch(error.value) == "2 missing weight(s), 2 weight(s) of another shape"


# -- images ---------------------------------------------------------------------------------------
def _case_folder(tmp_path: Path, name: str, writer) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    writer(folder / "bad_0000.nii.gz")
    return folder


@pytest.mark.parametrize("kind, words", [
    ("corrupt", "bad_0000.nii.gz"),
    ("truncated", "bad_0000.nii.gz"),
    ("2d", "bad_0000.nii.gz"),
    ("nan", "bad_0000.nii.gz"),
    ("empty", "bad_0000.nii.gz"),
])
def test_bad_test_images_are_named_and_leave_no_map(env, tmp_path, capsys, kind, words):
    root, name = env

    def write(path):
        if kind == "corrupt":
            path.write_bytes(b"\x1f\x8b not really gzip")
        elif kind == "truncated":
            write_nifti(path, np.random.default_rng(0).random((10, 20, 18)).astype(np.float32))
            path.write_bytes(path.read_bytes()[:200])
        elif kind == "2d":
            write_nifti(path, np.ones((20, 18), np.float32))
        elif kind == "nan":
            image = np.ones((10, 20, 18), np.float32)
            image[3, 4, 5] = np.nan
            write_nifti(path, image, spacing=(2.0, 2.0, 2.0))
        else:  # nothing above 0: no brain
            write_nifti(path, np.zeros((10, 20, 18), np.float32), spacing=(2.0, 2.0, 2.0))

    folder = _case_folder(tmp_path, "in", write)
    out = tmp_path / "maps"
    status, err = run(predict_cli.main, ["-i", folder, "-o", out, "-d", "1", "-c", "2d_small",
                                         "-tr", "DisyreTrainer_debug"], capsys)
    assert status == USER_ERROR and words in one_error_line(err)
    assert not list(out.glob("*.nii.gz")) and not temporaries(out)


def test_a_mask_on_another_grid_and_an_empty_mask_are_named(env, tmp_path, capsys):
    root, name = env
    images = tmp_path / "in"
    masks = tmp_path / "masks"
    write_nifti(images / "c_0000.nii.gz", np.ones((10, 20, 18), np.float32), spacing=(2.0, 2.0, 2.0))
    write_nifti(masks / "c.nii.gz", np.ones((10, 20, 17), np.uint8), spacing=(2.0, 2.0, 2.0))
    argv = ["-i", images, "-o", tmp_path / "maps", "-d", "1", "-c", "2d_small", "-tr", "DisyreTrainer_debug",
            "--masks", masks]
    status, err = run(predict_cli.main, argv, capsys)
    assert status == USER_ERROR and "c.nii.gz" in one_error_line(err)
    write_nifti(masks / "c.nii.gz", np.zeros((10, 20, 18), np.uint8), spacing=(2.0, 2.0, 2.0))
    status, err = run(predict_cli.main, argv, capsys)
    assert status == USER_ERROR and "empty brain mask" in one_error_line(err)


@pytest.mark.parametrize("command, variable", [("plan", "DISYRE_raw"), ("train", "DISYRE_preprocessed"),
                                               ("predict", "DISYRE_results")])
def test_a_missing_environment_variable_is_named_with_the_export_line(env, monkeypatch, tmp_path, capsys, command,
                                                                      variable):
    root, name = env
    monkeypatch.delenv(variable)
    main, argv = {"plan": (plan_cli.main, ["-d", "1", "--no_progress"]),
                  "train": (train_cli.main, ["1", "2d_small", "all"]),
                  "predict": (predict_cli.main, predict_argv(root, name, tmp_path / "m"))}[command]
    status, err = run(main, argv, capsys)
    assert status == USER_ERROR and f"export {variable}=" in one_error_line(err)


def test_an_unknown_dataset_id_lists_what_exists(env, tmp_path, capsys):
    root, name = env
    status, err = run(predict_cli.main, ["-i", root / "raw" / name / "imagesTs", "-o", tmp_path / "m", "-d", "77",
                                         "-c", "2d_small"], capsys)
    assert status == USER_ERROR and "77" in one_error_line(err) and name in err


# -- evaluation ----------------------------------------------------------------------------------
def test_evaluation_outputs_are_checked_before_any_metric(env, tmp_path, capsys):
    root, name = env
    maps = tmp_path / "maps"
    assert run(predict_cli.main, predict_argv(root, name, maps), capsys)[0] == 0
    labels = root / "raw" / name / "labelsTs"
    folder_as_file = tmp_path / "summary_is_a_folder"
    folder_as_file.mkdir()
    status, err = run(evaluate_cli.main, ["-pred", maps, "-ref", labels, "-o", folder_as_file], capsys)
    assert status == USER_ERROR and "must be a file, but it is a folder" in one_error_line(err)
    report_file = tmp_path / "report.html"
    report_file.write_text("x")
    status, err = run(evaluate_cli.main, ["-pred", maps, "-ref", labels, "--report", report_file,
                                          "-o", tmp_path / "s.json"], capsys)
    assert status == USER_ERROR and "is a file" in one_error_line(err)
    assert not (tmp_path / "s.json").exists()


def test_negative_label_values_are_refused_naming_the_file(env, tmp_path, capsys):
    root, name = env
    maps = tmp_path / "maps"
    assert run(predict_cli.main, predict_argv(root, name, maps), capsys)[0] == 0
    labels = tmp_path / "labels"
    labels.mkdir()
    import shutil

    for label in (root / "raw" / name / "labelsTs").glob("*.nii.gz"):
        shutil.copy(label, labels / label.name)
    import SimpleITK as sitk

    bad = sitk.ReadImage(str(labels / "test00.nii.gz"))
    array = sitk.GetArrayFromImage(bad).astype(np.int16)
    array[0, 0, 0] = -1
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(bad)
    sitk.WriteImage(image, str(labels / "test00.nii.gz"))
    status, err = run(evaluate_cli.main, ["-pred", maps, "-ref", labels, "-mask", root / "raw" / name / "masksTs"],
                      capsys)
    line = one_error_line(err)
    assert status == USER_ERROR and "test00.nii.gz" in line and "negative label values" in line
    assert not (maps / "summary.json").exists()


# -- issue 26: a failed prediction leaves no folder it made; --median_filter is recorded ----------
def test_a_failed_prediction_leaves_no_output_folder_it_created_and_keeps_a_users(env, tmp_path, capsys):
    root, name = env
    folder = _case_folder(tmp_path, "in", lambda path: path.write_bytes(b"\x1f\x8b not really gzip"))
    argv = ["-i", folder, "-d", "1", "-c", "2d_small", "-tr", "DisyreTrainer_debug"]
    created = tmp_path / "new" / "maps"
    status, err = run(predict_cli.main, [*argv, "-o", created], capsys)
    assert status == USER_ERROR and "bad_0000.nii.gz" in one_error_line(err)
    assert not (tmp_path / "new").exists()  # neither the folder nor the parent it made
    users = tmp_path / "mine"
    users.mkdir()
    status, err = run(predict_cli.main, [*argv, "-o", users], capsys)
    assert status == USER_ERROR and users.is_dir()  # a folder the user made stays


def test_the_median_filter_flag_overrides_the_plans_and_is_recorded_per_map(env, tmp_path, capsys):
    root, name = env
    sizes = {}
    for flag in (None, "0", "5"):
        out = tmp_path / f"maps_{flag}"
        status, err = run(predict_cli.main, predict_argv(root, name, out, *(["--median_filter", flag] if flag else [])),
                          capsys)
        assert status == 0, err
        sizes[flag] = json.loads((out / ".test00.json").read_text())["median_filter_size"]
    assert sizes == {None: 3, "0": 0, "5": 5}  # None: the plans' (2d_small: 3)
    maps = {flag: read_image_array(tmp_path / f"maps_{flag}" / "test00.nii.gz") for flag in sizes}
    assert not np.array_equal(maps["0"], maps[None]) and not np.array_equal(maps["5"], maps[None])
    status, err = run(predict_cli.main, predict_argv(root, name, tmp_path / "even", "--median_filter", "2"), capsys)
    assert status == USER_ERROR and "--median_filter" in err and not (tmp_path / "even").exists()


def read_image_array(path: Path) -> np.ndarray:
    from disyre_v2.imageio import read_image

    return read_image(path)[0]
