"""disyre_v2_convert_brats2020: BraTS 2020 Training → labelled raw test dataset."""
from __future__ import annotations

import argparse
import logging

from disyre_v2.dataset_conversion.brats2020 import MODALITIES, convert_brats2020
from disyre_v2.run.common import add_common_flags, run_cli
from disyre_v2.run.conversion_flags import add_conversion_flags, dataset_target

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="disyre_v2_convert_brats2020",
        description="Convert BraTS 2020 Training into a raw dataset of test cases with labels (imagesTs, "
        "labelsTs). Reads BraTS20_Training_NNN/BraTS20_Training_NNN_{flair,t1,t1ce,t2,seg}.nii[.gz] anywhere "
        "under ROOT: the official MICCAI_BraTS2020_TrainingData folder or the uncompressed copy (whose case 355 "
        "segmentation W39_1998.09.19_Segm.nii is recognised). Images are copied with their geometry; the brain "
        "mask is any selected channel > 0 (the images are skull-stripped); labels keep their values 0, 1 "
        "necrosis, 2 edema, 4 enhancing (anomalous: > 0). BraTS20_Validation cases have no labels and are skipped.",
        epilog="Example: disyre_v2_convert_brats2020 -i /data/MICCAI_BraTS2020_TrainingData -d 2 --modalities t2  "
        "(writes $DISYRE_raw/Dataset002_BraTS2020_T2)",
    )
    add_conversion_flags(parser, "BraTS2020_<modalities>, e.g. BraTS2020_T1")
    parser.add_argument("--modalities", nargs="+", default=["t1"], metavar="MOD",
                        help=f"channels, in order, from {', '.join(MODALITIES)} (default: t1; the paper evaluates "
                        "t1 and t2 separately, one model per modality)")
    add_common_flags(parser)
    return parser


def _run(args: argparse.Namespace) -> None:
    dataset_id, name = dataset_target(args)
    target = convert_brats2020(args.input, dataset_id, modalities=args.modalities, name=name,
                               overwrite=args.overwrite, skip_incomplete=args.skip_incomplete)
    logger.info("Wrote %s", target)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(_run, args)


if __name__ == "__main__":
    raise SystemExit(main())
