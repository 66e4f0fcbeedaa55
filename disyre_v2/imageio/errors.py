from __future__ import annotations

import re
from pathlib import Path


class ImageFormatError(ValueError):
    """An image file cannot be used: unreadable, not 3D, non-finite, or on the wrong grid.

    The message always names the file and says what to do about it.
    """


class NonFiniteImageError(ImageFormatError):
    """An image holds NaN or infinite voxels. The message fits any input image; a caller that knows what
    the file is (an anomaly map read for evaluation, say) re-raises it with its own fix."""

    def __init__(self, path: Path | str, count: int):
        self.path, self.count = Path(path), int(count)
        super().__init__(f"{path} contains {count} NaN or infinite voxel(s). Replace them in the file (e.g. with 0 "
                         f"outside the brain), then run the command again.")


def itk_reason(error: BaseException) -> str:
    """ITK's reason for a failure, whole and on one line: the last line of its message, without the
    source location and the ``ITK ERROR: Filter(0x...):`` prefix (the filter's name is kept)."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    if not lines:
        return "unknown ITK error"
    text = re.sub(r"^ITK ERROR:\s*", "", lines[-1])
    return re.sub(r"^(\w+)\(0x[0-9a-fA-F]+\):\s*", r"\1: ", text)


def first_line(error: BaseException) -> str:
    """``Type: first line of the message`` (whole words, never cut), or the type alone."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
