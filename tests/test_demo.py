"""disyre_v2_demo --quick end to end: the README's main command, on the real synthetic benchmark."""
import json
import os

import pytest

from disyre_v2.demo import MARKER, prepare_output
from disyre_v2.run import demo as cli


def test_quick_demo_runs_the_whole_chain(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DISYRE_n_proc_DA", "0")
    monkeypatch.setenv("DISYRE_raw", str(tmp_path / "users_own_raw"))
    output = tmp_path / "demo"
    assert cli.main(["--quick", "-o", str(output)]) == 0
    printed = capsys.readouterr().out
    assert "AP" in printed and "[Dice]" in printed and "Report: " in printed
    summary = json.loads((output / "demo_summary.json").read_text())
    assert summary["n_cases"] == 3 and set(summary["per_kind"]) <= {"brats", "atlas", "subtle", "healthy", "none"}
    assert 0.0 <= summary["pooled"]["average_precision"] <= 1.0
    assert summary["demo"]["quick"] is True and summary["demo"]["timings"]["training_s"] > 0
    # The time budget (not a wall-clock assertion, which a loaded machine would break) ended the
    # training before its step limit, and the run says how many steps it made.
    debug = next((output / "results").glob("Dataset990_*/DisyreTrainer__DisyrePlans__2d_small/fold_all_seed_0/debug.json"))
    info = json.loads(debug.read_text())
    assert info["time_budget_s"] == 45.0 and 1 <= info["steps_trained"] < 3000
    assert (output / "report" / "index.html").is_file()
    assert len(list((output / "predictions").glob("*.nii.gz"))) == 3
    assert (output / "predictions" / "volume_scores.csv").is_file()
    # The user's own folders are neither used nor changed.
    assert os.environ["DISYRE_raw"] == str(tmp_path / "users_own_raw")
    assert not (tmp_path / "users_own_raw").exists()


def test_output_folder_rules(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(FileExistsError, match="not made by disyre_v2_demo; choose another -o"):
        prepare_output(foreign)
    previous = tmp_path / "previous"
    prepare_output(previous)
    (previous / "report").mkdir()
    (previous / "report" / "old.png").write_text("old")
    (previous / "notes.txt").write_text("kept")
    prepare_output(previous)
    assert (previous / MARKER).is_file() and not (previous / "report").exists()
    assert (previous / "notes.txt").read_text() == "kept"
