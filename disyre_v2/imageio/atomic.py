"""Atomic writes: write to a temporary sibling, rename onto the target only when the write succeeded.

A crash or an exception mid-write leaves the previous file (or none), never a truncated one.
"""
from __future__ import annotations

import os
import re
import socket
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

# .NAME.HOST-PID-HEX.tmpSUFFIX: the writer's host and process tell a stale temporary (its writer is
# gone, e.g. killed with -9) from one being written right now by a process running beside us.
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?P<host>[^.]*)-(?P<pid>\d+)-[0-9a-f]{8}\.tmp.*$")
# Earlier versions named temporaries .NAME.HEX.tmpSUFFIX, without their writer: always stale now.
_LEGACY_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[0-9a-f]{8}\.tmp.*$")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname())[:40]


def temporary_sibling(path: Path, suffix: str = "") -> Path:
    """A unique hidden name next to ``path`` (same file system, so the rename is atomic)."""
    return path.parent / f".{path.name}.{_host()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp{suffix}"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(folder: Path | str, recursive: bool = False) -> list[Path]:
    """Delete the temporaries of :func:`atomic_path` whose writing process on this host is gone (a kill
    in mid-write leaves one); temporaries of live processes, or of other hosts, are left alone."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in folder.rglob(".*.tmp*") if recursive else folder.glob(".*.tmp*"):
        match = _TEMPORARY.match(path.name)
        if match is None and _LEGACY_TEMPORARY.match(path.name) is None:
            continue
        if match is not None and (match["host"] != _host() or _process_alive(int(match["pid"]))):
            continue
        if path.is_dir():
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


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


def first_missing_folder(folder: Path | str) -> Path | None:
    """The outermost folder of ``folder``'s path that does not exist yet: what a run writing into
    ``folder`` would create, and so what it may remove again after a failure (None: it all exists)."""
    folder = Path(folder).absolute()
    missing = None
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            break
        missing = candidate
    return missing


def remove_empty_tree(top: Path | str) -> None:
    """Remove ``top`` (made by a run that failed) and its folders, bottom up, as long as they hold no
    file; temporaries of writers that died are removed first. A folder holding a file stays."""
    top = Path(top)
    if not top.is_dir():
        return
    remove_stale_temporaries(top, recursive=True)
    for root, _, files in os.walk(top, topdown=False):
        if files:
            return
        try:
            os.rmdir(root)
        except OSError:
            return
