"""Atomic writes: write to a temporary sibling, rename onto the target only when the write succeeded.

A crash or an exception mid-write leaves the previous file (or none), never a truncated one.
"""
from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def temporary_sibling(path: Path, suffix: str = "") -> Path:
    """A unique hidden name next to ``path`` (same file system, so the rename is atomic)."""
    return path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp{suffix}"


@contextmanager
def atomic_path(path: Path | str, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path to write to; it replaces ``path`` when the block ends without error.

    ``suffix`` keeps the extension libraries read the format from (".nii.gz", ".png", ".npy").
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path, suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
