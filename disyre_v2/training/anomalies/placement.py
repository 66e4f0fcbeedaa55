"""Where the anomaly canvas (and a foreign-patch crop) sits in the P×P patch.

method_numbers.md ("Anomaly synthesis"): the centre is drawn uniformly among foreground pixels at least C/2 from the patch
border, or among all such pixels if none is foreground, so the C×C canvas always lies inside the
patch.
"""
from __future__ import annotations

import numpy as np


def canvas_window(centre: tuple[int, int], canvas_size: int) -> tuple[slice, slice]:
    """The C×C slices of the patch covered by a canvas centred at ``centre``."""
    half = canvas_size // 2
    top, left = centre[0] - half, centre[1] - half
    return slice(top, top + canvas_size), slice(left, left + canvas_size)


def choose_centre(brain: np.ndarray, canvas_size: int, rng: np.random.Generator) -> tuple[int, int]:
    """A canvas centre for the 2D boolean brain mask ``brain`` (P×P)."""
    height, width = brain.shape
    if canvas_size > min(height, width):
        raise ValueError(
            f"the anomaly canvas ({canvas_size} px) is larger than the patch {brain.shape}; "
            f"set anomaly_synthesis.canvas_size in plans.json to at most the patch size (P/2)")
    half = canvas_size // 2
    # Centres whose canvas stays inside the patch: rows half .. height - canvas_size + half.
    rows = slice(half, height - canvas_size + half + 1)
    cols = slice(half, width - canvas_size + half + 1)
    interior = brain[rows, cols]
    inner_width = interior.shape[1]
    candidates = np.flatnonzero(interior)
    if candidates.size:
        flat = int(candidates[rng.integers(candidates.size)])
    else:
        flat = int(rng.integers(interior.size))
    return half + flat // inner_width, half + flat % inner_width
