"""Shared command-line plumbing: logging set-up, common flags, turning known errors into messages."""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable

from disyre_v2.dataset.dataset_json import DatasetJsonError
from disyre_v2.dataset.integrity import DatasetIntegrityError
from disyre_v2.imageio.errors import ImageFormatError
from disyre_v2.paths import DatasetNotFoundError, MissingEnvironmentVariable

# Errors whose message already tells the user what to do: print it, no traceback.
USER_ERRORS = (
    MissingEnvironmentVariable,
    DatasetNotFoundError,
    DatasetJsonError,
    DatasetIntegrityError,
    ImageFormatError,
    FileExistsError,
    FileNotFoundError,
    ValueError,
)


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def add_common_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")


def run_cli(func: Callable[[argparse.Namespace], object], args: argparse.Namespace) -> int:
    """Call ``func(args)``; known user errors become one clear message and exit code 1."""
    setup_logging(getattr(args, "verbose", False))
    try:
        func(args)
    except USER_ERRORS as error:
        if getattr(args, "verbose", False):
            raise
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0
