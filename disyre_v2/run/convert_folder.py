"""disyre_v2_convert_folder: any folder of NIfTIs (+ masks, + labels) → raw dataset."""
from __future__ import annotations

import argparse
import logging

from disyre_v2.dataset_conversion.folder import convert_folder
from disyre_v2.run.common import add_common_flags, int_between, run_cli
from disyre_v2.run.preparation_flags import add_prepare_flag, preparation_if_asked

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="disyre_v2_convert_folder",
        description="Convert a folder of NIfTI images into a raw dataset $DISYRE_raw/DatasetNNN_Name. "
        "Training cases (--role train) must be healthy; test cases (--role test) may have lesion labels. "
        "Run it twice with --append to put training and test cases into one dataset.",
        epilog="Example: disyre_v2_convert_folder -i healthy/ -d 10 --role train --channel_suffixes _t1 _t2 "
        "--channel_names T1 T2 && disyre_v2_convert_folder -i patients/ -d 10 --role test "
        "--labels patients_seg/ --channel_suffixes _t1 _t2 --channel_names T1 T2 --append. Whole-head scans "
        "from the scanner: add --prepare --skull_strip robex to both runs, and predict with --native_space "
        "$DISYRE_raw/Dataset010_Folder for maps on each patient's own scan.",
    )
    parser.add_argument("-i", "--input", required=True,
                        help="folder holding the images (.nii or .nii.gz), read at its top level only: subfolders "
                        "are not searched, so put every case's files side by side in this one folder")
    parser.add_argument("-d", "--dataset_id", required=True, type=int_between(0, 999), help="dataset id, 0..999")
    parser.add_argument("--role", required=True, choices=["train", "test"],
                        help="train: healthy cases into imagesTr; test: cases into imagesTs")
    parser.add_argument("--name", default="Folder", help="dataset name after the id (default: Folder)")
    parser.add_argument("--labels", default=None,
                        help="folder of lesion labels named CASE.nii[.gz] (> 0 anomalous); test role only")
    parser.add_argument("--masks", default=None,
                        help="folder of brain masks named CASE.nii[.gz]; default: any channel > 0 (skull-stripped images)")
    parser.add_argument("--channel_suffixes", nargs="+", default=None, metavar="SUFFIX",
                        help="file-name suffixes of the channels, in channel order (e.g. _t1 _t2); "
                        "default: every file is a one-channel case")
    parser.add_argument("--channel_names", nargs="+", default=None, metavar="NAME",
                        help="channel names for dataset.json (e.g. T1 T2); default: derived from the suffixes")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset of the same id and name")
    parser.add_argument("--append", action="store_true", help="add the cases to an existing dataset of the same id and name")
    add_prepare_flag(parser)
    add_common_flags(parser)
    return parser


def _run(args: argparse.Namespace) -> None:
    target = convert_folder(
        args.input, args.dataset_id, args.role, name=args.name, labels=args.labels, masks=args.masks,
        channel_suffixes=args.channel_suffixes, channel_names=args.channel_names,
        overwrite=args.overwrite, append=args.append, preparation=preparation_if_asked(args),
        num_processes=args.num_processes,
    )
    logger.info("Wrote %s", target)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(_run, args)


if __name__ == "__main__":
    raise SystemExit(main())
