"""disyre_v2_convert_ixi: one IXI modality → healthy raw dataset."""
from __future__ import annotations

import argparse
import logging

from disyre_v2.dataset_conversion.ixi import MODALITIES, convert_ixi
from disyre_v2.run.common import add_common_flags, run_cli
from disyre_v2.run.conversion_flags import add_conversion_flags, dataset_target
from disyre_v2.run.preparation_flags import add_prepare_flag, preparation_if_asked

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="disyre_v2_convert_ixi",
        description="Convert one IXI modality into a raw dataset of healthy training cases (imagesTr). IXI's "
        "T1, T2 and PD scans are on different grids and NOT registered to each other, so each dataset holds one modality. "
        "IXI scans are whole-head: give skull-stripped copies (IXI002-Guys-0828-T1_stripped.nii[.gz] or "
        "..._stripped_registered, anywhere under ROOT; mask = any voxel > 0) or --masks with brain masks; "
        "without either the conversion is refused.",
        epilog="Example: disyre_v2_convert_ixi -i /data/IXI-T1 -d 4 --modality T1 --masks /data/IXI-T1-masks  "
        "(writes $DISYRE_raw/Dataset004_IXI_T1)",
    )
    add_conversion_flags(parser, "IXI_<modality>, e.g. IXI_T1")
    parser.add_argument("--modality", required=True, type=str.upper, choices=list(MODALITIES),
                        help="the one modality to convert: T1, T2 or PD (files IXI002-Guys-0828-T1.nii.gz ...)")
    parser.add_argument("--masks", default=None, metavar="DIR",
                        help="folder of brain masks on the scans' grids, named IXI002-Guys-0828-T1_mask.nii[.gz] "
                        "(or like the scan, or IXI002-Guys-0828_mask): the whole-head scans are copied and the masks "
                        "delimit the brain (background outside is zeroed by preprocessing); stripped copies are then ignored")
    add_prepare_flag(parser)
    add_common_flags(parser)
    return parser


def _run(args: argparse.Namespace) -> None:
    dataset_id, name = dataset_target(args)
    target = convert_ixi(args.input, dataset_id, args.modality, masks=args.masks, name=name,
                         overwrite=args.overwrite, skip_incomplete=args.skip_incomplete,
                         preparation=preparation_if_asked(args), num_processes=args.num_processes)
    logger.info("Wrote %s", target)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(_run, args)


if __name__ == "__main__":
    raise SystemExit(main())
