"""Export → install → predict on tiny data: the shared model predicts the maps of the original tree,
exports are byte-for-byte reproducible, predict -m needs no DISYRE_* variable, and every bad archive or
flag is refused in one line with exit 2, nothing written."""
from __future__ import annotations

import io
import json
import shutil
import zipfile

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from disyre_v2.model_sharing.manifest import FORMAT_VERSION, dumps, sha256_bytes
from disyre_v2.run import calibrate as calibrate_cli
from disyre_v2.run import export_model as export_cli
from disyre_v2.run import install_model as install_cli
from disyre_v2.run import predict as predict_cli
from disyre_v2.run import train as train_cli
from tests.trainer_fixtures import make_environment, make_preprocessed_dataset, point_environment_at

MODEL = "DisyreTrainer__DisyrePlans__2d_small"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Dataset001_Tiny with two trained seeds of fold 0, a calibration, and their export."""
    root = tmp_path_factory.mktemp("sharing")
    with pytest.MonkeyPatch.context() as patch:
        make_environment(patch, root)
        name = make_preprocessed_dataset(root, n_train=5, n_test=2)
        for seed in ("0", "1"):
            assert train_cli.main(["1", "2d_small", "0", "--steps", "2", "--seed", seed]) == 0
        healthy = root / "raw" / name / "imagesTr"
        assert calibrate_cli.main(["-d", "1", "-c", "2d_small", "-i", str(healthy), "--no_progress"]) == 0
        assert export_cli.main(["-d", "1", "-c", "2d_small", "-o", str(root / "model.zip")]) == 0
    return root, name


@pytest.fixture
def env(trained, monkeypatch, tmp_path):
    root, name = trained
    point_environment_at(monkeypatch, root)
    return root, name, tmp_path


def run(cli, *argv):
    """A command's exit status (argparse's refusals exit through SystemExit)."""
    try:
        return cli.main([str(a) for a in argv])
    except SystemExit as stop:
        return stop.code


def maps(folder):
    return {p.name: sitk.GetArrayFromImage(sitk.ReadImage(str(p))) for p in sorted(folder.glob("*.nii.gz"))}


def rewrite(source, target, change):
    """A copy of the zip ``source`` with its members (name → bytes) passed through ``change``."""
    with zipfile.ZipFile(source) as handle:
        members = {info.filename: handle.read(info) for info in handle.infolist()}
    change(members)
    with zipfile.ZipFile(target, "w") as handle:
        for name, data in members.items():
            handle.writestr(name, data)
    return target


def with_manifest(members, edit):
    manifest = json.loads(members["manifest.json"])
    edit(manifest)
    members["manifest.json"] = dumps(manifest)


def test_export_holds_what_prediction_needs_and_is_reproducible(env):
    root, name, tmp_path = env
    archive = root / "model.zip"
    with zipfile.ZipFile(archive) as handle:
        names = handle.namelist()
        manifest = json.loads(handle.read("manifest.json"))
        infos = handle.infolist()
        state = torch.load(io.BytesIO(handle.read("fold_0_seed_0/checkpoint_final.pth")), weights_only=True)
        card = handle.read("MODEL.md").decode()
    calibration = [n for n in names if n.startswith("calibrations/")]
    assert len(calibration) == 1
    assert names == sorted(set(names) - {"MODEL.md", "manifest.json"}) + ["MODEL.md", "manifest.json"]
    assert {"plans.json", "dataset.json", "fold_0_seed_0/checkpoint_final.pth", "fold_0_seed_1/checkpoint_final.pth",
            "fold_0_seed_0/progress.png"} <= set(names)
    assert not any(n.endswith(("checkpoint_latest.pth", "debug.json", "training_log.txt")) for n in names)
    assert all(i.date_time == (1980, 1, 1, 0, 0, 0) and i.external_attr >> 16 == 0o100644 for i in infos)
    # The checkpoint: weights and what load_models reads; no optimizer, schedules, random states or curves.
    assert {"optimizer", "lr_scheduler", "rng", "progress", "ema"}.isdisjoint(state)
    assert {"network", "network_plans", "conditional", "configuration", "step", "scores", "format_version"} <= set(state)
    assert manifest["format_version"] == FORMAT_VERSION and manifest["model_folder"] == MODEL
    assert manifest["dataset"] == name and manifest["data"]["channel_names"] == {"0": "T1"}
    assert [r["run"] for r in manifest["runs"]] == ["fold_0_seed_0", "fold_0_seed_1"]
    assert all(r["step"] == 2 and r["training"]["arguments"]["num_steps"] == 2 for r in manifest["runs"])
    with zipfile.ZipFile(archive) as handle:
        for member, entry in manifest["files"].items():
            assert sha256_bytes(handle.read(member)) == entry["sha256"]
    assert "## Intended use" in card and "fold_0_seed_1" in card
    # Twice the same bytes.
    assert run(export_cli, "-d", "1", "-c", "2d_small", "-o", tmp_path / "again.zip") == 0
    assert (tmp_path / "again.zip").read_bytes() == archive.read_bytes()
    # One seed: its runs only, and the calibration of both seeds stays behind.
    assert run(export_cli, "-d", "1", "-c", "2d_small", "--seeds", "1", "-o", tmp_path / "one.zip") == 0
    with zipfile.ZipFile(tmp_path / "one.zip") as handle:
        assert not any(n.startswith(("fold_0_seed_0", "calibrations")) for n in handle.namelist())


def test_install_then_predict_gives_the_original_maps(env, monkeypatch):
    root, name, tmp_path = env
    images = root / "raw" / name / "imagesTs"
    assert run(predict_cli, "-i", images, "-o", tmp_path / "original", "-d", "1", "-c", "2d_small", "--binary") == 0
    results = tmp_path / "fresh_results"
    point_environment_at(monkeypatch, root, results)
    assert run(install_cli, root / "model.zip") == 0
    installed = results / name / MODEL
    assert (installed / "manifest.json").is_file() and not list(results.glob(f"{name}/.*"))
    assert run(predict_cli, "-i", images, "-o", tmp_path / "installed", "-d", "1", "-c", "2d_small", "--binary") == 0
    # -m, with no DISYRE_* variable at all, on a folder unzipped under another name.
    for variable in ("DISYRE_raw", "DISYRE_preprocessed", "DISYRE_results"):
        monkeypatch.delenv(variable)
    unzipped = tmp_path / "my model"
    zipfile.ZipFile(root / "model.zip").extractall(unzipped)
    assert run(predict_cli, "-i", images, "-o", tmp_path / "by_folder", "-m", unzipped, "--binary") == 0
    original = maps(tmp_path / "original")
    assert len(original) == 4  # two maps and their binary masks
    for other in ("installed", "by_folder"):
        produced = maps(tmp_path / other)
        assert produced.keys() == original.keys()
        assert all(np.array_equal(original[k], produced[k]) for k in original)
        assert ((tmp_path / other / "volume_scores.csv").read_text()
                == (tmp_path / "original" / "volume_scores.csv").read_text())


def test_install_refuses_to_overwrite_without_force(env, monkeypatch, capsys):
    root, name, tmp_path = env
    point_environment_at(monkeypatch, root, tmp_path / "results")
    assert run(install_cli, root / "model.zip") == 0
    target = tmp_path / "results" / name / MODEL
    (target / "plans.json").write_text("{}")  # a local edit the refusal must keep
    assert run(install_cli, root / "model.zip") == 2
    assert "--force" in capsys.readouterr().err and (target / "plans.json").read_text() == "{}"
    assert run(install_cli, root / "model.zip", "--force") == 0
    assert json.loads((target / "plans.json").read_text())["configurations"]
    assert sorted(p.name for p in target.parent.iterdir()) == [MODEL]  # nothing set aside is left


BAD_ARCHIVES = {
    "not a zip": (lambda src, dst: dst.write_bytes(b"this is no zip file\n" * 50), "not a zip archive"),
    "truncated": (lambda src, dst: dst.write_bytes(src.read_bytes()[: len(src.read_bytes()) // 2]), "not a zip archive"),
    "wrong hash": (lambda src, dst: rewrite(src, dst, lambda m: m.__setitem__(
        "plans.json", m["plans.json"].replace(b'"2d_small"', b'"2d_smalL"'))), "SHA-256"),
    "newer format": (lambda src, dst: rewrite(src, dst, lambda m: with_manifest(
        m, lambda x: x.__setitem__("format_version", FORMAT_VERSION + 1))), "newer than the version"),
    "missing file": (lambda src, dst: rewrite(src, dst, lambda m: m.pop("dataset.json")), "lacks file(s)"),
    "unlisted member": (lambda src, dst: rewrite(src, dst, lambda m: m.__setitem__("extra.py", b"print(1)")),
                        "does not list"),
    "dot-dot path": (lambda src, dst: rewrite(src, dst, lambda m: m.__setitem__("../evil.json", b"{}")), "unsafe path"),
    "absolute path": (lambda src, dst: rewrite(src, dst, lambda m: m.__setitem__("/tmp/evil.json", b"{}")),
                      "unsafe path"),
    "dot-dot in manifest": (lambda src, dst: rewrite(src, dst, lambda m: with_manifest(
        m, lambda x: x["files"].__setitem__("../evil.json", {"sha256": "0" * 64, "size": 2}))), "unsafe path"),
    "no manifest": (lambda src, dst: rewrite(src, dst, lambda m: m.pop("manifest.json")), "no manifest.json"),
}


@pytest.mark.parametrize("case", sorted(BAD_ARCHIVES))
def test_bad_archives_are_refused_in_one_line_nothing_written(env, monkeypatch, capsys, case):
    root, name, tmp_path = env
    make, expected = BAD_ARCHIVES[case]
    bad = tmp_path / "bad.zip"
    make(root / "model.zip", bad)
    results = tmp_path / "results"
    point_environment_at(monkeypatch, root, results)
    assert run(install_cli, bad) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and expected in err and len(err.splitlines()) == 1, err
    assert not results.exists()  # nothing written, not even the dataset folder


def test_symlink_member_and_size_bound_are_refused(env, monkeypatch, capsys):
    root, name, tmp_path = env
    point_environment_at(monkeypatch, root, tmp_path / "results")

    def add_link(members):
        members.pop("dataset.json")

    link = rewrite(root / "model.zip", tmp_path / "link.zip", add_link)
    with zipfile.ZipFile(link, "a") as handle:
        info = zipfile.ZipInfo("dataset.json")
        info.create_system = 3
        info.external_attr = 0o120777 << 16  # a symbolic link to /etc/passwd
        handle.writestr(info, "/etc/passwd")
    assert run(install_cli, link) == 2
    assert "link" in capsys.readouterr().err
    assert run(install_cli, root / "model.zip", "--max_gib", "0.000001") == 2
    assert "more than the limit" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


def test_a_failure_while_unpacking_leaves_nothing_half_installed(env, monkeypatch):
    """A checkpoint that passes its hash but is no checkpoint (the manifest re-signed to match): refused
    after unpacking, and the staging folder is gone."""
    root, name, tmp_path = env
    results = tmp_path / "results"
    point_environment_at(monkeypatch, root, results)

    def forge(members):
        members["fold_0_seed_0/checkpoint_final.pth"] = b"not a checkpoint"
        with_manifest(members, lambda x: x["files"].__setitem__(
            "fold_0_seed_0/checkpoint_final.pth", {"sha256": sha256_bytes(b"not a checkpoint"), "size": 16}))

    assert run(install_cli, rewrite(root / "model.zip", tmp_path / "forged.zip", forge)) == 2
    assert not results.exists()


def test_model_flag_refusals(env, capsys):
    root, name, tmp_path = env
    images = root / "raw" / name / "imagesTs"
    folder = root / "res" / name / MODEL
    for extra in (["-d", "1"], ["-c", "2d_small"], ["-tr", "DaeTrainer"]):
        assert run(predict_cli, "-i", images, "-o", tmp_path / "out", "-m", folder, *extra) == 2
        err = capsys.readouterr().err
        assert "-m names the model folder itself" in err and len(err.strip().splitlines()) == 1
    assert run(predict_cli, "-i", images, "-o", tmp_path / "out", "-d", "1") == 2
    assert "-c is required" in capsys.readouterr().err
    empty = tmp_path / "empty_model"
    empty.mkdir()
    shutil.copy(folder / "plans.json", empty / "plans.json")
    (empty / "fold_0_seed_0").mkdir()
    assert run(predict_cli, "-i", images, "-o", tmp_path / "out", "-m", empty) == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert run(predict_cli, "-i", images, "-o", tmp_path / "out", "-m", tmp_path / "nowhere") == 2
    assert run(calibrate_cli, "-m", folder, "--no_progress") == 2
    assert "-i HEALTHY_FOLDER" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_export_refusals(env, capsys):
    root, name, tmp_path = env
    assert run(export_cli, "-d", "1", "-c", "2d", "-o", tmp_path / "m.zip") == 2
    assert "no such model folder" in capsys.readouterr().err
    assert run(export_cli, "-d", "1", "-c", "2d_small", "--seeds", "7", "-o", tmp_path / "m.zip") == 2
    assert "--seeds 7" in capsys.readouterr().err
    assert run(export_cli, "-d", "1", "-c", "2d_small", "-o", tmp_path / "m.tar") == 2
    assert not list(tmp_path.glob("m.*")) and not list(tmp_path.glob(".m.*"))


def test_onnx_networks_travel_in_the_zip_and_install(env, monkeypatch):
    pytest.importorskip("onnx")
    root, name, tmp_path = env
    archive = tmp_path / "onnx.zip"
    assert run(export_cli, "-d", "1", "-c", "2d_small", "--onnx", "-o", archive) == 0
    with zipfile.ZipFile(archive) as handle:
        onnx_members = sorted(n for n in handle.namelist() if n.startswith("onnx/"))
        assert onnx_members == ["onnx/fold_0_seed_0.onnx", "onnx/fold_0_seed_1.onnx"]
        assert set(onnx_members) <= set(json.loads(handle.read("manifest.json"))["files"])
    point_environment_at(monkeypatch, root, tmp_path / "results")
    assert run(install_cli, archive) == 0
    assert (tmp_path / "results" / name / MODEL / "onnx" / "fold_0_seed_1.onnx").is_file()


def test_onnx_export_takes_the_exported_checkpoint(env, monkeypatch):
    """-chk latest --onnx converts checkpoint_latest.pth, not the final weights."""
    pytest.importorskip("onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    from disyre_v2.training.trainer.checkpoint import load_checkpoint, save_checkpoint
    root, name, tmp_path = env
    results = tmp_path / "results"
    shutil.copytree(root / "res" / name, results / name)
    run_folder = results / name / MODEL / "fold_0_seed_0"
    latest = load_checkpoint(run_folder / "checkpoint_final.pth")
    for key in ("network", "ema"):  # a 'latest' whose weights are all zero: its network outputs zeros
        if isinstance(latest.get(key), dict):
            latest[key] = {k: torch.zeros_like(v) if v.is_floating_point() else v for k, v in latest[key].items()}
    save_checkpoint(latest, run_folder / "checkpoint_latest.pth")
    point_environment_at(monkeypatch, root, results)

    def onnx_output(checkpoint):
        archive = tmp_path / f"{checkpoint}.zip"
        assert run(export_cli, "-d", "1", "-c", "2d_small", "-f", "0", "--seeds", "0", "-chk", checkpoint,
                   "--onnx", "-o", archive) == 0
        with zipfile.ZipFile(archive) as handle:
            session = onnxruntime.InferenceSession(handle.read("onnx/fold_0_seed_0.onnx"),
                                                   providers=["CPUExecutionProvider"])
        feeds = {}
        for item in session.get_inputs():
            shape = [2 if not isinstance(d, int) else d for d in item.shape]
            feeds[item.name] = (np.full(shape, 50, np.int64) if "int" in item.type
                                else np.random.default_rng(0).random(shape, dtype=np.float32))
        return session.run(None, feeds)[0]

    assert np.abs(onnx_output("final")).max() > 0
    np.testing.assert_array_equal(onnx_output("latest"), 0)
