"""One flag convention on every command: multi-word long flags are spelled with underscores, and the
hyphenated spelling is a hidden alias that parses to the same value (documentation/reference/cli.md)."""
from __future__ import annotations

import argparse
import importlib
import re
from pathlib import Path

import pytest

from disyre_v2.run.flag_style import canonical_arguments, other_spelling

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = re.findall(r'"(disyre_v2_\w+) = (disyre_v2\.run\.\w+):main"', (ROOT / "setup.py").read_text())


def multi_word_flags(parser: argparse.ArgumentParser) -> list[tuple[argparse.Action, str]]:
    return [(action, option) for action in parser._actions for option in action.option_strings
            if other_spelling(option) is not None]


def a_valid_value(action: argparse.Action) -> list[str]:
    """Arguments for ``action``: none for a switch, else a value its type and choices accept, other than
    the default where one exists (so that parsing it shows)."""
    if action.nargs == 0:
        return []
    candidates = [str(c) for c in action.choices] if action.choices else ["2", "1", "0.5", "some_value"]
    accepted = []
    for candidate in candidates:
        try:
            value = candidate if action.type is None else action.type(candidate)
        except (argparse.ArgumentTypeError, TypeError, ValueError):
            continue
        accepted.append((value != action.default and [value] != action.default, candidate))
    assert accepted, f"no test value for {action.option_strings}"
    return [max(accepted, key=lambda item: item[0])[1]]


def lenient(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The parser with nothing required, so one flag can be parsed on its own; errors raise."""
    for action in parser._actions:
        action.required = False
        if not action.option_strings and action.nargs is None:
            action.nargs = "?"

    def error(message: str):
        raise AssertionError(message)

    parser.error = error  # type: ignore[method-assign]
    return parser


@pytest.mark.parametrize("command, module", SCRIPTS)
def test_multi_word_flags_use_underscores_and_accept_hyphens(command, module):
    parser = lenient(importlib.import_module(module).build_parser())
    help_text = parser.format_help()
    for action, option in multi_word_flags(parser):
        assert "-" not in option[2:], f"{command} {option}: multi-word flags are spelled with underscores"
        hyphenated = other_spelling(option)
        assert hyphenated not in help_text, f"{command}: the alias {hyphenated} is hidden from -h"
        value = a_valid_value(action)
        canonical, _ = parser.parse_known_args([option, *value])
        aliased, unknown = parser.parse_known_args([hyphenated, *value])
        assert not unknown, f"{command} does not accept {hyphenated}"
        assert getattr(aliased, action.dest) == getattr(canonical, action.dest) != action.default, \
            f"{command}: {hyphenated} does not set {action.dest} as {option} does"
        if value:
            joined, unknown = parser.parse_known_args([f"{hyphenated}={value[0]}"])
            assert not unknown and getattr(joined, action.dest) == getattr(canonical, action.dest)


def test_a_real_command_line_in_mixed_spellings():
    from disyre_v2.run import convert_folder

    args = convert_folder.build_parser().parse_args(
        ["-i", "scans", "-d", "10", "--role", "train", "--channel-suffixes", "_t1", "_t2", "--channel_names", "T1",
         "T2", "--skull-strip", "none", "--prepare_seed", "3", "--bias-correction"])
    assert args.channel_suffixes == ["_t1", "_t2"] and args.channel_names == ["T1", "T2"]
    assert (args.skull_strip, args.prepare_seed, args.bias_correction) == ("none", 3, True)


def test_only_flags_are_rewritten():
    parser = argparse.ArgumentParser()
    parser.add_argument("--skull_strip")
    parser.add_argument("names", nargs="*")
    # A one-word flag, a value, an unknown flag, and everything after "--" stay as they are.
    assert canonical_arguments(parser, ["--skull-strip", "x", "--other-flag", "--", "--skull-strip"]) == \
        ["--skull_strip", "x", "--other-flag", "--", "--skull-strip"]
    assert other_spelling("-np") is None and other_spelling("--verbose") is None
