"""disyre_v2_prepare: raw scans → skull-stripped, registered scans on the template grid."""
from __future__ import annotations

import argparse
import sys

from disyre_v2.preparation.prepare_dataset import prepare_dataset
from disyre_v2.preparation.prepare_folder import PreparationFailed
from disyre_v2.run.common import add_common_flags, run_cli
from disyre_v2.run.preparation_flags import add_preparation_flags, preparation_options

FAILED_CASES_STATUS = 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="disyre_v2_prepare",
        description="Bring raw scans into the template space the model works in: reorient to the template, "
        "optional N4 bias-field correction, skull stripping, affine registration of the first channel to the "
        "template (other channels rigidly to the first), resampling of every channel, the brain mask and the "
        "labels onto the template grid. IN is a raw dataset (imagesTr/, imagesTs/, masks*/, labelsTs/, "
        "dataset.json) or a flat folder of CASE_0000.nii.gz files (with optional masks/ and labels/); OUT gets "
        "the same layout, plus OUT/preparation/CASE.tfm (template -> native transform), CASE_qa.png (template "
        "outline over the registered scan) and CASE.json per case. A case that fails is named with its reason "
        "while the others go on; the command then lists the failures and exits with status 1.",
        epilog="Example: disyre_v2_prepare -i ixi_t1/ -o $DISYRE_raw/Dataset010_IXI_T1 --skull_strip robex "
        "--bias_correction -np 2  (then disyre_v2_predict --native_space OUT writes maps on the original scans)",
    )
    parser.add_argument("-i", "--input", required=True, help="raw dataset folder or folder of CASE_0000.nii[.gz] files")
    parser.add_argument("-o", "--output", required=True, help="output folder (same layout as the input)")
    parser.add_argument("--channels", nargs="+", default=None, metavar="NAME",
                        help="names of the channel files in order, CASE_0000 first (e.g. T1 T2; give T1 first: "
                        "ROBEX strips and the registration aligns the first channel); checked against the files and "
                        "against the input's dataset.json; recorded in OUT/preparation/options.json, and a raw-layout "
                        "input without dataset.json gets one in OUT")
    add_preparation_flags(parser)
    parser.add_argument("--continue", dest="resume", action="store_true",
                        help="skip cases already prepared in OUT (those with OUT/preparation/CASE.json)")
    add_common_flags(parser)
    return parser


def _run(args: argparse.Namespace) -> int:
    # prepare_dataset checks the inputs, the template and that -o is writable before it writes anything.
    try:
        result = prepare_dataset(args.input, args.output, preparation_options(args),
                                 num_processes=args.num_processes, resume=args.resume, channels=args.channels)
    except PreparationFailed as failure:
        # The list of failed cases, one per line (run_cli would fold it into one line).
        print(f"error: {failure.what}\n{failure.fix}", file=sys.stderr)
        return FAILED_CASES_STATUS
    print(f"Prepared {len(result.prepared)} case(s) into {args.output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    status = []
    code = run_cli(lambda a: status.append(_run(a)), args)
    return code or (status[0] if status else 0)


if __name__ == "__main__":
    raise SystemExit(main())
