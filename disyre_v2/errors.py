"""The user-facing error of every stage: what is wrong, in which file, and how to fix it.

``str(UserError(what, path, fix))`` reads ``<what> (<path>) — <fix>``; the command-line wrapper prints
it as one line after ``error:`` and exits with status 2. Raise it (or a subclass) for anything the
user can correct; let programming errors keep their tracebacks.
"""
from __future__ import annotations

from pathlib import Path


class UserError(ValueError):
    def __init__(self, what: str, path: Path | str | None = None, fix: str | None = None):
        self.what, self.path, self.fix = what, path, fix
        message = what + (f" ({path})" if path is not None else "") + (f" — {fix}" if fix else "")
        super().__init__(message)
