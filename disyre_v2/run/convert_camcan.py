"""disyre_v2_convert_camcan: CamCAN stripped and registered images → healthy raw dataset."""
from __future__ import annotations

import argparse
import logging

from disyre_v2.dataset_conversion.camcan import convert_camcan
from disyre_v2.run.common import add_common_flags, run_cli
from disyre_v2.run.conversion_flags import add_conversion_flags, dataset_target
from disyre_v2.run.preparation_flags import add_prepare_flag, preparation_if_asked

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="disyre_v2_convert_camcan",
        description="Convert CamCAN (cc700) into a raw dataset of healthy training cases. Reads the "
        "skull-stripped, registered images sub-CC110033_T1w_stripped_registered.nii[.gz] (and _T2w_...) "
        "anywhere under ROOT: a flat folder, one folder per subject, or inside the BIDS tree. The raw BIDS "
        "scans alone are refused: they are whole-head and T1/T2 are not co-registered, so skull stripping "
        "(e.g. ROBEX) and affine registration (e.g. to SRI24) are needed first. Brain masks are any channel > 0.",
        epilog="Example: disyre_v2_convert_camcan -i /data/camcan_registered -d 1 --modalities T1 "
        "--validation_list camcan_val.txt  (writes $DISYRE_raw/Dataset001_CamCAN_T1)",
    )
    add_conversion_flags(parser, "CamCAN_<modalities>, e.g. CamCAN_T1")
    parser.add_argument("--modalities", nargs="+", default=["T1"], metavar="MOD",
                        help="channels, in order: T1 and/or T2 (default: T1; the paper trains one model per "
                        "modality; T1 T2 makes a two-channel dataset, possible because the registered copies share a grid)")
    parser.add_argument("--validation_list", default=None, metavar="FILE",
                        help="text file of subject ids (CC110033 or sub-CC110033, one per line, # comments): these "
                        "subjects go to imagesTs without labels as held-out healthy validation cases, and are "
                        "listed in dataset.json under validationCases; every id must be found")
    add_prepare_flag(parser)
    add_common_flags(parser)
    return parser


def _run(args: argparse.Namespace) -> None:
    dataset_id, name = dataset_target(args)
    target = convert_camcan(args.input, dataset_id, modalities=args.modalities, validation_list=args.validation_list,
                            name=name, overwrite=args.overwrite, skip_incomplete=args.skip_incomplete,
                            preparation=preparation_if_asked(args), num_processes=args.num_processes)
    logger.info("Wrote %s", target)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(_run, args)


if __name__ == "__main__":
    raise SystemExit(main())
