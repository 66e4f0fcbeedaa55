"""disyre_v2_make_synthetic_dataset: an offline benchmark built from real template anatomy."""
from __future__ import annotations

import argparse

from disyre_v2.dataset_conversion.synthetic.acquisition import ACQUISITIONS
from disyre_v2.dataset_conversion.synthetic.builder import DEFAULT_NAME, make_synthetic_dataset
from disyre_v2.dataset_conversion.synthetic.generator import KINDS
from disyre_v2.run.common import add_common_flags, float_between, int_at_least, int_between, run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="disyre_v2_make_synthetic_dataset",
        description="Write a synthetic brain MRI dataset (T1, T2) into $DISYRE_raw: healthy training cases "
        "(CamCAN-like) and test cases with BraTS-, ATLAS-like and subtle lesions plus ground truth, built "
        "from the MNI152 template that ships with nilearn. Nothing is downloaded.",
    )
    parser.add_argument("-d", dest="dataset_id", type=int_between(0, 999), required=True, help="dataset id (0-999): writes Dataset{ID}_{name}")
    parser.add_argument("--n_train", type=int_at_least(0), default=30, help="number of healthy training cases (default 30)")
    parser.add_argument("--n_test", type=int_at_least(0), default=20, help="number of test cases, about 20%% of them lesion-free (default 20)")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS),
                        help="lesion kinds of the test cases, used in turn (default: all)")
    parser.add_argument("--spacing", type=int, choices=(1, 2), default=2, help="voxel size in mm (default 2)")
    parser.add_argument("--seed", type=int_at_least(0), default=0, help="random seed; the same seed gives byte-identical files (default 0)")
    parser.add_argument("-np", dest="num_processes", type=int_at_least(1), default=1, help="worker processes (default 1); does not change the output")
    parser.add_argument("--name", default=DEFAULT_NAME, help=f"dataset name after the id (default {DEFAULT_NAME})")
    parser.add_argument("--lesion_free_fraction", type=float_between(0.0, 1.0), default=0.2,
                        help="share of test cases without a lesion (empty label; default 0.2)")
    parser.add_argument("--acquisition", choices=list(ACQUISITIONS), default="default",
                        help="scanner settings of the site: default (the benchmark's), or scanner_b, a differently "
                        "acquired site (about twice the blur, 2-3x the noise, a stronger bias field) for domain "
                        "shift and fine-tuning (default: default)")
    parser.add_argument("--no_montage", action="store_true", help="do not write the PNG montage")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset of the same name")
    add_common_flags(parser)
    return parser


def _run(args: argparse.Namespace) -> None:
    folder = make_synthetic_dataset(
        args.dataset_id, n_train=args.n_train, n_test=args.n_test, kinds=args.kinds, spacing=args.spacing,
        seed=args.seed, num_processes=args.num_processes, name=args.name,
        lesion_free_fraction=args.lesion_free_fraction, overwrite=args.overwrite, montage=not args.no_montage,
        acquisition=args.acquisition,
    )
    print(f"Wrote {folder}")


def main(argv: list[str] | None = None) -> int:
    return run_cli(_run, build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
