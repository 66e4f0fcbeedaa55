"""Every command of setup.py has -h help for every flag, and documentation/reference/cli.md lists them."""
import argparse
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = re.findall(r'"(disyre_v2_\w+) = (disyre_v2\.run\.\w+):main"', (ROOT / "setup.py").read_text())


def sections() -> dict[str, str]:
    text = (ROOT / "documentation" / "reference" / "cli.md").read_text()
    return {part.split("\n", 1)[0].strip(): part for part in text.split("\n## ")[1:]}


def test_every_command_is_declared():
    assert len(SCRIPTS) >= 11


@pytest.mark.parametrize("command, module", SCRIPTS)
def test_every_flag_has_help_and_is_documented(command, module):
    parser = importlib.import_module(module).build_parser()
    documented = sections()
    assert command in documented, f"{command} missing from cli.md: run documentation/make_cli_reference.py"
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help and action.help.strip(), f"{command}: {action.dest} has no help text"
        names = action.option_strings or [action.metavar or action.dest]
        assert any(name in documented[command] for name in names), \
            f"{command}: {names} not in cli.md; run documentation/make_cli_reference.py"
