"""README.md's quick start, run as written: the hospital route (healthy scans and patients, no labels:
convert with --prepare, plan, train, predict with --native_space) is read from README's own fenced
block and run as shell commands, on tiny skull-stripped heads, so README cannot drift from the commands.

The only changes to README's lines are those of SUBSTITUTIONS below, each for speed on a CPU: a 6 mm
skull-stripped template instead of ROBEX on the 1 mm MNI152 template, the CPU configuration and a few
training steps. Anything else README says (flags, dataset ids and names, paths) runs unchanged.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from disyre_v2.imageio.geometry import Geometry
from tests.head_anatomy import head_and_mask, known_affine, warped_head

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SPACING = 6.0  # mm: the tiny heads and template (about 30 x 38 x 39 voxels)

# README text -> test text, applied in order to every command of the block. Keep this map minimal.
SUBSTITUTIONS: list[tuple[str, str]] = [
    # ROBEX on a whole head and registration onto the 1 mm MNI152 template take minutes per scan; the
    # tiny heads are already skull-stripped and register onto a 6 mm skull-stripped template.
    (r"--skull_strip robex", "--skull_strip none --template {template}"),
    # The GPU configuration and device -> the CPU ones (README says how: 2d_small, no -device cuda).
    (r"(?<=[ ])2d(?=[ ])", "2d_small"),
    (r" -device cuda", ""),
    # A handful of training steps instead of the plans' budget.
    (r"^(disyre_v2_train .*)$", r"\1 --steps 3"),
]

EXPECTED_STEPS = ["disyre_v2_convert_folder", "disyre_v2_convert_folder", "disyre_v2_plan_and_preprocess",
                  "disyre_v2_train", "disyre_v2_predict"]


def fenced_bash_blocks(text: str) -> list[str]:
    return re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M)


def commands_of(block: str) -> list[str]:
    """The block's commands, continuation lines joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    lines = [line.split(" #", 1)[0].strip() for line in joined.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def hospital_route() -> list[str]:
    blocks = [b for b in fenced_bash_blocks(README.read_text()) if "--native_space" in b]
    assert len(blocks) == 1, "README.md must have one bash block with the hospital route (--native_space)"
    return commands_of(blocks[0])


def substituted(command: str, template: Path) -> str:
    for pattern, replacement in SUBSTITUTIONS:
        command = re.sub(pattern, replacement.replace("{template}", shlex.quote(str(template))), command)
    return command


def write_tiny_heads(tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    """healthy/ (3 scans) and patients/ (2 scans, one with a bright 'lesion'): skull-stripped heads at
    SPACING mm, each on a scanner grid of its own (moved, scaled, anisotropic, one stored sagittally); and
    a skull-stripped template at SPACING mm. Returns the template path and the patients' files."""
    head, brain = head_and_mask(SPACING)
    template = tmp_path / "template_brain.nii.gz"
    sitk.WriteImage(sitk.Mask(head, brain), str(template))
    patients = {}
    for folder, names, first_seed in (("healthy", ["h1", "h2", "h3"], 50), ("patients", ["p1", "p2"], 60)):
        (tmp_path / folder).mkdir()
        for k, name in enumerate(names):
            scan, scan_brain = warped_head(known_affine(first_seed + k, SPACING), SPACING, sagittal=name == "p2")
            array = sitk.GetArrayFromImage(scan) * (sitk.GetArrayFromImage(scan_brain) > 0)
            if name == "p1":  # a bright lesion in the brain
                inside = np.argwhere(array > 0)
                z, y, x = inside[len(inside) // 2]
                array[z - 2:z + 2, y - 2:y + 2, x - 2:x + 2] = array.max() * 1.5
            stripped = sitk.GetImageFromArray(array.astype(np.float32))
            stripped.CopyInformation(scan)
            sitk.WriteImage(stripped, str(tmp_path / folder / f"{name}.nii.gz"))
            if folder == "patients":
                patients[name] = tmp_path / folder / f"{name}.nii.gz"
    return template, patients


def test_readme_hospital_route_runs_as_written(tmp_path):
    commands = hospital_route()
    assert [c.split()[0] for c in commands] == EXPECTED_STEPS
    template, patients = write_tiny_heads(tmp_path)
    env = dict(os.environ)
    for key in ("raw", "preprocessed", "results"):
        env[f"DISYRE_{key}"] = str(tmp_path / key)
        (tmp_path / key).mkdir()
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # this Python's commands
    env["OMP_NUM_THREADS"] = env.get("OMP_NUM_THREADS", "2")
    for command in commands:
        command = substituted(command, template)
        done = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"

    dataset = tmp_path / "raw" / "Dataset010_MyHospital"
    assert sorted(p.name for p in (dataset / "imagesTr").iterdir()) == [f"h{i}_0000.nii.gz" for i in (1, 2, 3)]
    for case in ["h1", "h2", "h3", "p1", "p2"]:  # both conversions' preparation records are kept
        assert (dataset / "preparation" / f"{case}.tfm").is_file()
    maps = tmp_path / "maps"
    for name, native in patients.items():
        on_template = sitk.ReadImage(str(maps / f"{name}.nii.gz"))
        assert on_template.GetSize() == head_and_mask(SPACING)[0].GetSize()
        back = sitk.ReadImage(str(maps / "native" / f"{name}.nii.gz"))
        assert Geometry.from_image(back) == Geometry.from_image(sitk.ReadImage(str(native)))  # its own grid
        values = sitk.GetArrayFromImage(back)
        assert np.isfinite(values).all() and values.max() > 0


def test_readme_test_command_is_what_ci_runs():
    """README's test command and .ci/run call the same Python the same way."""
    block = next(b for b in fenced_bash_blocks(README.read_text()) if "pytest" in b)
    readme = [c.strip() for c in commands_of(block)[0].split("&&")]
    ci = [line.replace(" --quiet", "").split(" ||")[0].strip()
          for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.startswith("python3 ")]
    assert readme == ci


def test_readme_gives_each_dataset_its_own_id():
    """One id per dataset across README: a dataset id names one dataset (id -> dataset name)."""
    text = README.read_text()
    datasets: dict[str, set[str]] = {}
    for command in (c for b in fenced_bash_blocks(text) for c in commands_of(b)):
        match = re.match(r"(disyre_v2_convert_\w+) -i (\S+) -d (\d+)", re.sub(r"\s+", " ", command))
        if match:
            converter, source, dataset_id = match.groups()
            source = source if converter != "disyre_v2_convert_folder" else "folder:" + (
                re.search(r"--name (\S+)", command) or [None, "Folder"])[1]
            datasets.setdefault(str(int(dataset_id)), set()).add(f"{converter} {source}")
    for inline in re.findall(r"`(disyre_v2_convert_\w+ -i \S+ -d \d+)[^`]*`", text.replace("\n", " ")):
        converter, _, source, _, dataset_id = inline.split()[:5]
        datasets.setdefault(str(int(dataset_id)), set()).add(f"{converter} {source}")
    assert datasets and all(len(sources) == 1 for sources in datasets.values()), datasets
