"""Seconds per synthetic subject at 2 and 1 mm: generation alone, and with writing its files.

Times are per subject in one process (one core; BLAS is limited to one thread during generation).
CPU time is reported next to wall time because a shared machine inflates wall time. The one-off
template load and resampling, cached per process, is reported separately.

    python benchmarks/synthetic_speed.py [--spacings 2 1] [--repeats 1]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from disyre_v2.dataset_conversion.synthetic.anatomy import load_template_anatomy, template_distance_maps
from disyre_v2.dataset_conversion.synthetic.generator import HEALTHY, KINDS, CaseSpec, generate_case
from disyre_v2.imageio.writer import write_image, write_mask


def _timed(function):
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def measure(spacing: int, repeats: int) -> dict[str, tuple[float, float, float]]:
    """kind -> (generation wall s, generation CPU s, writing wall s), averaged over ``repeats`` subjects."""
    _, load_wall, _ = _timed(lambda: (load_template_anatomy(spacing), template_distance_maps(spacing)))
    results = {"template load (once)": (load_wall, float("nan"), float("nan"))}
    with tempfile.TemporaryDirectory() as folder:
        for kind in (HEALTHY, *KINDS):
            sums = [0.0, 0.0, 0.0]
            for index in range(repeats):
                split = "Tr" if kind == HEALTHY else "Ts"
                case, wall, cpu = _timed(lambda: generate_case(CaseSpec("speed", split, index, kind, 0, spacing)))

                def write():
                    for c, channel in enumerate(case.images):
                        write_image(channel, case.geometry, Path(folder) / f"x_{c:04d}.nii.gz")
                    write_mask(case.mask, case.geometry, Path(folder) / "mask.nii.gz")
                    if case.label is not None:
                        write_mask(case.label, case.geometry, Path(folder) / "label.nii.gz")

                _, write_wall, _ = _timed(write)
                for i, value in enumerate((wall, cpu, write_wall)):
                    sums[i] += value / repeats
            results[kind] = tuple(sums)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spacings", type=int, nargs="+", default=[2, 1], choices=(1, 2), help="spacings to time (mm)")
    parser.add_argument("--repeats", type=int, default=2, help="subjects per kind and spacing")
    args = parser.parse_args(argv)
    print("| spacing | case | generate wall s | generate CPU s | write wall s |")
    print("| ---: | --- | ---: | ---: | ---: |")
    for spacing in args.spacings:
        for kind, (wall, cpu, write) in measure(spacing, args.repeats).items():
            cells = " | ".join("" if v != v else f"{v:.2f}" for v in (wall, cpu, write))
            print(f"| {spacing} mm | {kind} | {cells} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
