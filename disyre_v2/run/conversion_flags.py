"""Flags shared by the public-dataset converters (disyre_v2_convert_camcan/atlas/brats2020/ixi)."""
from __future__ import annotations

import argparse

from disyre_v2.paths import DATASET_NAME_PATTERN, parse_dataset_id


def add_conversion_flags(parser: argparse.ArgumentParser, default_name: str) -> None:
    """-i, -d, --name, --overwrite, --skip_incomplete."""
    parser.add_argument("-i", "--input", required=True, metavar="ROOT",
                        help="folder holding the downloaded dataset; it is searched recursively, "
                        ".nii and .nii.gz are both accepted")
    parser.add_argument("-d", "--dataset_id", required=True, metavar="ID",
                        help="id of the dataset to create, 0..999 (or a full DatasetNNN_Name)")
    parser.add_argument("--name", default=None,
                        help=f"dataset name after the id, letters, digits, '_' and '-' (default: {default_name})")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing dataset of the same id and name (without it, an existing one is "
                        "never touched)")
    parser.add_argument("--skip_incomplete", action="store_true",
                        help="convert only the cases that have every expected file, warning about the others "
                        "(default: stop and list the missing files)")


def dataset_target(args: argparse.Namespace) -> tuple[int, str | None]:
    """(id, name or None for the default) from -d and --name."""
    parsed = parse_dataset_id(args.dataset_id)
    if isinstance(parsed, int):
        return parsed, args.name
    match = DATASET_NAME_PATTERN.match(parsed)
    dataset_id, name = int(match.group(1)), match.group(2)
    if args.name is not None and args.name != name:
        raise ValueError(f"-d {parsed} names the dataset {name!r} but --name says {args.name!r}; give one of them.")
    return dataset_id, name
