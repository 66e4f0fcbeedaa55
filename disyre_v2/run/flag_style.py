"""One flag convention for every command: multi-word long flags are spelled with underscores, as in
nnU-Net (``--skull_strip``, ``--skip_incomplete``); the hyphenated spelling (``--skip-incomplete``) is
accepted as a hidden alias, so a command line written either way works.

:func:`accept_both_spellings` is applied by ``add_common_flags`` (every command's parser calls it), and
rewrites the other spelling to the parser's own when the parser parses, so flags added after it are
covered too. The aliases are not listed in ``-h``; documentation/reference/cli.md states the convention.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

_INSTALLED = "_disyre_both_spellings"


def other_spelling(option: str) -> str | None:
    """``--a_b`` ↔ ``--a-b`` for a multi-word long flag; None for a one-word or short flag."""
    if not option.startswith("--") or len(option) <= 2:
        return None
    body = option[2:]
    if "_" in body:
        return "--" + body.replace("_", "-")
    if "-" in body:
        return "--" + body.replace("-", "_")
    return None


def canonical_arguments(parser: argparse.ArgumentParser, arguments: Sequence[str]) -> list[str]:
    """``arguments`` with every flag written in the other spelling of one of ``parser``'s flags rewritten
    to the parser's own spelling (``--skip-incomplete`` → ``--skip_incomplete``, also ``--a-b=VALUE``).

    Rewriting the command line, rather than registering the aliases as option strings, keeps argparse's
    prefix matching unambiguous (``--skull`` still means ``--skull_strip``)."""
    known = parser._option_string_actions
    result = []
    for position, argument in enumerate(arguments):
        if argument == "--":  # everything after it is positional
            return result + list(arguments[position:])
        flag, equals, value = argument.partition("=")
        alias = other_spelling(flag)
        if flag not in known and alias is not None and alias in known:
            argument = alias + equals + value
        result.append(argument)
    return result


def accept_both_spellings(parser: argparse.ArgumentParser) -> None:
    """Make ``parser`` accept both spellings of its multi-word long flags, whenever they were added."""
    if getattr(parser, _INSTALLED, False):
        return
    parse_known_args = parser.parse_known_args

    def parse_with_aliases(args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None):
        arguments = sys.argv[1:] if args is None else args
        return parse_known_args(canonical_arguments(parser, [str(a) for a in arguments]), namespace)

    parser.parse_known_args = parse_with_aliases  # type: ignore[method-assign]
    setattr(parser, _INSTALLED, True)
