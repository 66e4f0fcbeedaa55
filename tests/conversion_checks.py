"""Assertions shared by the converter tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk


def voxels(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def direction(path: Path) -> tuple[float, ...]:
    return tuple(round(d, 6) for d in sitk.ReadImage(str(path)).GetDirection())


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def assert_nothing_written(raw: Path, keep: tuple[str, ...] = ()) -> None:
    """No dataset folder and no hidden staging or backup folder in $DISYRE_raw besides ``keep``."""
    left = [p.name for p in raw.iterdir() if p.name not in keep]
    assert left == [], f"left behind in {raw}: {left}"


def corrupt(path: Path) -> None:
    """Overwrite a NIfTI with bytes that are no image, so that copying it fails mid-way through a
    conversion (a truncated file would not do: ITK zero-fills truncated NIfTI data silently)."""
    path.write_bytes(b"this is not a NIfTI file " * 20)


def help_text(main, capsys) -> str:
    """The -h output with line wrapping undone."""
    try:
        main(["-h"])
    except SystemExit as exit_:
        assert exit_.code == 0
    return " ".join(capsys.readouterr().out.split())


def assert_every_flag_documented(parser, text: str) -> None:
    """Every option of the parser appears in the -h text with a help string of its own."""
    for action in parser._actions:
        assert action.help, f"{action.option_strings} has no help"
        for option in action.option_strings:
            assert option in text
