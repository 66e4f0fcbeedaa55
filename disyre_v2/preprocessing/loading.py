"""Load one case (channels and brain mask) with the checks every stage relies on."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from disyre_v2.imageio.errors import ImageFormatError
from disyre_v2.imageio.geometry import Geometry
from disyre_v2.imageio.reader import read_case, read_mask


def load_case(image_paths: Sequence[Path | str], mask_path: Path | str | None = None) -> tuple[np.ndarray, np.ndarray, Geometry]:
    """Channels as float32 (C, Z, Y, X), the brain mask as bool (Z, Y, X), and the grid.

    Without a mask file the mask is "any channel > 0". Raises :class:`ImageFormatError` naming the
    file for NaN/inf voxels, channels or mask on another grid, and an empty brain mask.
    """
    image_paths = [Path(p) for p in image_paths]
    data, geometry = read_case(image_paths)
    if mask_path is not None:
        mask = read_mask(mask_path, geometry, image_paths[0])
        if not mask.any():
            raise ImageFormatError(
                f"{mask_path} is an empty brain mask (no voxel > 0). Recompute the mask, or remove the "
                f"file to derive the mask from the image (any channel > 0)."
            )
    else:
        mask = (data > 0).any(axis=0)
        if not mask.any():
            raise ImageFormatError(
                f"{image_paths[0]}: no voxel > 0 in any channel, so no brain mask can be derived. Is the "
                f"image blank? Provide a brain mask in masksTr/masksTs or fix the image."
            )
    return data, mask, geometry
