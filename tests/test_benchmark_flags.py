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
