"""Shared command-line plumbing: logging set-up, common flags, checked numeric flags, output checks, and
one error convention for every command.

A user error (bad input, bad flag, missing file) prints one line, ``error: <what> (<file>) — <how to
fix>``, and exits with status 2 (argparse's own status for bad flags); ``-v`` shows the traceback
too. Anything else is an internal error and keeps its traceback.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable

from disyre_v2.dataset.dataset_json import DatasetJsonError
from disyre_v2.dataset.integrity import DatasetIntegrityError
from disyre_v2.errors import UserError
from disyre_v2.imageio.errors import ImageFormatError
from disyre_v2.paths import DatasetNotFoundError, MissingEnvironmentVariable

USER_ERROR_STATUS = 2

# Errors whose message already tells the user what to do: print it, no traceback.
USER_ERRORS = (
    UserError,
    MissingEnvironmentVariable,
    DatasetNotFoundError,
    DatasetJsonError,
    DatasetIntegrityError,
    ImageFormatError,
    FileExistsError,
    FileNotFoundError,
    NotADirectoryError,
    PermissionError,
    ValueError,
)


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def add_common_flags(parser: argparse.ArgumentParser) -> None:
    """-v, and both spellings of multi-word flags (``--skull_strip`` or ``--skull-strip``; see flag_style)."""
    from disyre_v2.run.flag_style import accept_both_spellings

    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages (and show tracebacks)")
    accept_both_spellings(parser)


# -- numeric flags, checked by argparse --------------------------------------------------------
def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum`` (the range is in the message)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def int_between(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer in [low, high]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer in {low}..{high}, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be an integer in {low}..{high}, got {value}")
        return value

    parse.__name__ = f"integer in {low}..{high}"
    return parse


def float_between(low: float, high: float, low_inclusive: bool = True,
                  high_inclusive: bool = True) -> Callable[[str], float]:
    """An argparse type: a number in [low, high] (a round bracket where that end is excluded)."""
    interval = f"{'[' if low_inclusive else '('}{low:g}, {high:g}{']' if high_inclusive else ')'}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number in {interval}, got {text!r}") from None
        above = low <= value if low_inclusive else low < value
        below = value <= high if high_inclusive else value < high
        if not (above and below):
            raise argparse.ArgumentTypeError(f"must be a number in {interval}, got {value:g}")
        return value

    parse.__name__ = f"number in {interval}"
    return parse


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {value:g}")
    return value


def one_line(message: str) -> str:
    return " ".join(str(message).split())


def run_cli(func: Callable[[argparse.Namespace], object], args: argparse.Namespace) -> int:
    """Call ``func(args)``; known user errors become one line on stderr and exit status 2."""
    setup_logging(getattr(args, "verbose", False))
    try:
        func(args)
    except USER_ERRORS as error:
        if getattr(args, "verbose", False):
            raise
        print(f"error: {one_line(error)}", file=sys.stderr)
        return USER_ERROR_STATUS
    return 0
