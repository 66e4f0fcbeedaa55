"""One case a converter has found and will write: its id, split and files."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PlannedCase:
    case_id: str
    split: str  # "Tr" (healthy training) or "Ts" (test)
    channel_files: tuple[Path, ...]
    label_file: Path | None = None
    mask_file: Path | None = None
