"""The hand-run detection benchmarks refuse bad folders in one line, before writing anything."""
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("script", ["detection_ablation.py", "compare_methods.py"])
def test_file_given_as_output_folder_is_refused(tmp_path: Path, script: str) -> None:
    a_file = tmp_path / "not_a_folder.txt"
    a_file.write_text("x")
    result = _run(script, "-o", str(a_file), "--steps", "1")
    assert result.returncode == 2
    assert f"-o {a_file} is a file; give a folder" in result.stderr
    assert "Traceback" not in result.stderr
    assert a_file.read_text() == "x"


@pytest.mark.parametrize("script", ["detection_ablation.py", "compare_methods.py"])
def test_heldout_without_images_is_refused_before_output_is_created(tmp_path: Path, script: str) -> None:
    output = tmp_path / "run"
    result = _run(script, "-o", str(output), "--heldout", str(tmp_path), "--steps", "1")
    assert result.returncode == 2
    assert f"--heldout {tmp_path} holds no imagesTs folder" in result.stderr
    assert not output.exists()


def _compare_methods_module():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import compare_methods
    finally:
        sys.path.remove(str(BENCHMARKS))
    return compare_methods


def _row(ap: float) -> dict:
    return {"all": [ap, ap / 2], "volume_auroc": 0.5, "rim_ratio": 1.0, "brats": [ap, 0.1]}


def test_compare_methods_runs_recorded_by_several_processes_are_kept(tmp_path: Path) -> None:
    compare_methods = _compare_methods_module()
    results = tmp_path / "compare_methods.json"
    # Two processes with their own --methods each add a run to the same file.
    compare_methods.record_run(results, {"method": "PII", "seed": 0, "train_s": 812.0, "test": _row(0.6)}, 2000)
    compare_methods.record_run(results, {"method": "MOOD22", "seed": 0, "train_s": 790.0, "test": _row(0.5)}, 2000)
    # PII scored again for a new --heldout set, without training: its training seconds stay.
    compare_methods.record_run(results, {"method": "PII", "seed": 0, "train_s": None, "test": _row(0.6),
                                         "heldout": _row(0.7)}, 2000)
    runs = compare_methods.read_runs(results)
    assert [(r["method"], r["seed"]) for r in runs] == [("MOOD22", 0), ("PII", 0)]
    assert runs[1]["train_s"] == 812.0 and runs[1]["heldout"]["all"] == [0.7, 0.35]
    assert not results.with_name(results.name + ".tmp").exists()


def test_compare_methods_takes_the_training_time_of_a_model_trained_before_from_debug_json(tmp_path: Path) -> None:
    compare_methods = _compare_methods_module()
    debug = tmp_path / "debug.json"
    debug.write_text('{"steps_trained": 2000, "session_steps": 2000, "session_wall_s": 2394.5}')
    assert compare_methods.recorded_training(tmp_path) == (2000, 2394.5)
    debug.write_text('{"steps_trained": 2000, "session_steps": 600, "session_wall_s": 700.0}')  # continued with --c
    assert compare_methods.recorded_training(tmp_path) == (2000, None)
    debug.write_text('{"steps_trained": 2000}')  # written before debug.json recorded the time
    assert compare_methods.recorded_training(tmp_path) == (2000, None)


def test_compare_methods_continues_a_killed_training_instead_of_refusing_its_folder(tmp_path: Path, monkeypatch) -> None:
    compare_methods = _compare_methods_module()
    calls = []
    monkeypatch.setattr(compare_methods, "train", lambda *args, **kwargs: calls.append((args, kwargs)))
    run_folder = tmp_path / "fold_all_seed_1"
    seconds = compare_methods.train_or_continue(run_folder, "Dataset992_X", "PiiTrainer", 1, 2000, "cpu")
    assert seconds is not None and seconds >= 0
    assert calls[-1] == (("Dataset992_X", "2d_small", "all"), {"trainer": "PiiTrainer", "seed": 1, "num_steps": 2000,
                                                              "device": "cpu", "resume": False})
    run_folder.mkdir()
    (run_folder / "checkpoint_latest.pth").write_bytes(b"")  # a training killed after its first checkpoint
    assert compare_methods.train_or_continue(run_folder, "Dataset992_X", "PiiTrainer", 1, 2000, "cpu") is None
    assert calls[-1][1]["resume"] is True


def test_compare_methods_table_only_writes_the_recorded_runs(tmp_path: Path) -> None:
    compare_methods = _compare_methods_module()
    compare_methods.record_run(tmp_path / "compare_methods.json",
                               {"method": "PII", "seed": 0, "train_s": 812.0, "test": _row(0.6)}, 2000)
    compare_methods.record_run(tmp_path / "compare_methods.json",
                               {"method": "PII", "seed": 1, "train_s": 788.0, "test": _row(0.4)}, 2000)
    result = _run("compare_methods.py", "-o", str(tmp_path), "--table", "--methods", "PII")
    assert result.returncode == 0, result.stderr
    table = (tmp_path / "compare_methods.md").read_text()
    assert ("| PII | 2 | 0.500 ± 0.100 | 0.250 ± 0.050 | 0.500 ± 0.100 [0.100 ± 0.000] | - [-] | - [-] "
            "| 0.500 ± 0.000 | 1.000 ± 0.000 | 800 |") in table
    assert not list((tmp_path / "raw").glob("Dataset*"))  # no dataset made, nothing trained


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="the refusal is for machines without CUDA")
def test_compare_methods_cuda_without_a_gpu_is_refused_before_output_is_created(tmp_path: Path) -> None:
    output = tmp_path / "run"
    result = _run("compare_methods.py", "-o", str(output), "--device", "cuda", "--methods", "r-VAE")
    assert result.returncode == 2
    assert "--device cuda was given but this machine has no CUDA device; use --device cpu" in result.stderr
    assert not output.exists()


def test_compare_methods_damaged_results_file_is_refused_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "compare_methods.json").write_text("{half a fil")
    result = _run("compare_methods.py", "-o", str(tmp_path), "--methods", "PII")
    assert result.returncode == 2
    assert f"{tmp_path / 'compare_methods.json'} is not a compare_methods.json" in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["compare_methods.json"]


def test_compare_methods_sets_each_method_beside_the_papers_table_1(tmp_path: Path) -> None:
    compare_methods = _compare_methods_module()
    row = {"all": [0.5, 0.4], "volume_auroc": 0.75, "rim_ratio": 1.0, "brats": [0.8, 0.7], "atlas": [0.2, 0.3]}
    shifted = {**row, "all": [0.7, 0.6], "brats": [0.6, 0.5]}
    runs = [{"method": "DISYRE v1", "seed": 0, "test": row}, {"method": "DISYRE v1", "seed": 1, "test": shifted},
            {"method": "FPI", "seed": 0, "test": row},  # not in the paper's Table 1: no row
            {"method": "PII", "seed": 0, "heldout": row}]  # scored on another set only
    lines = compare_methods.beside_paper(runs, "test").splitlines()
    assert lines[0].endswith("| paper: BraTS-T2 | paper: BraTS-T1 | paper: ATLAS |")
    rows = {line.split(" | ")[0][2:]: line for line in lines[2:]}
    # the mean over the two seeds beside DISYRE (v1)'s printed figures (BraTS-T2, BraTS-T1, ATLAS)
    assert rows["DISYRE v1"] == ("| DISYRE v1 | 2 | 0.700 [0.600] | 0.200 [0.300] | 0.600 [0.500] | 0.750 | "
                                 "0.75 [0.70] | 0.34 [0.41] | 0.29 [0.37] |")
    assert rows["PII"] == "| PII | 0 | not run on this set | | | | 0.13 [0.22] | 0.13 [0.22] | 0.03 [0.07] |"
    assert "FPI" not in rows and "FAE" not in rows  # FAE: not buildable, not a method of ours
    assert list(rows)[:2] == ["DISYRE v2", "DISYRE v1"]  # the paper's BraTS-T2 order
    assert set(rows) == {"DISYRE v2", "DISYRE v1", "DAE", "MOOD22", "r-VAE", "VAE", "CutPaste", "PII"}
