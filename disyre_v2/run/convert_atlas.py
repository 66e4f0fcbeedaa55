"""disyre_v2_convert_atlas: ATLAS R2.0 Training (T1 + lesion masks) → labelled raw test dataset."""
from __future__ import annotations

import argparse
import logging

from disyre_v2.dataset_conversion.atlas import convert_atlas
from disyre_v2.run.common import add_common_flags, run_cli
from disyre_v2.run.conversion_flags import add_conversion_flags, dataset_target

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="disyre_v2_convert_atlas",
        description="Convert ATLAS R2.0 (chronic stroke, T1) into a raw dataset of test cases with lesion "
        "labels (imagesTs, labelsTs). Reads ATLAS_2/Training/R0xx/sub-*/ses-*/anat/*_space-MNI152NLin2009aSym_T1w "
        "and *_label-L_desc-T1lesion_mask anywhere under ROOT. When skull-stripped, registered derivatives "
        "*_T1w_stripped_registered.nii[.gz] exist they are used (every subject then needs one), with "
        "*_label-L_desc-T1lesion_mask_registered masks when present. Without derivatives the defaced, "
        "whole-head T1s are converted with a warning. Testing subjects (no released masks) are skipped with a warning.",
        epilog="Example: disyre_v2_convert_atlas -i /data/ATLAS_2 -d 3 --exclude atlas_problem_cases.txt  "
        "(writes $DISYRE_raw/Dataset003_ATLAS)",
    )
    add_conversion_flags(parser, "ATLAS")
    parser.add_argument("--exclude", default=None, metavar="FILE",
                        help="text file of subjects to leave out (sub-r001s001, r001s001 or sub-r001s001_ses-1, one per "
                        "line, # comments), e.g. problem cases")
    parser.add_argument("--include", default=None, metavar="FILE",
                        help="text file of the only subjects to convert (same format), e.g. a published subset such "
                        "as the 571-case list; applied before --exclude")
    add_common_flags(parser)
    return parser


def _run(args: argparse.Namespace) -> None:
    dataset_id, name = dataset_target(args)
    target = convert_atlas(args.input, dataset_id, exclude=args.exclude, include=args.include, name=name,
                           overwrite=args.overwrite, skip_incomplete=args.skip_incomplete)
    logger.info("Wrote %s", target)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(_run, args)


if __name__ == "__main__":
    raise SystemExit(main())
