"""Physical grid of a 3D image: spacing, origin, direction and size, in SimpleITK (x, y, z) order.

Arrays are (Z, Y, X) as SimpleITK's GetArrayFromImage returns them; geometry tuples stay in
SimpleITK's (x, y, z) order so they can be handed back to SimpleITK unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from disyre_v2.imageio.errors import ImageFormatError

# Relative tolerance on spacing and absolute tolerances on origin (mm) and direction cosines:
# NIfTI headers written by different tools differ in float rounding, not in meaning.
SPACING_RTOL = 1e-4
ORIGIN_ATOL_MM = 1e-3
DIRECTION_ATOL = 1e-4


@dataclass(frozen=True)
class Geometry:
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]  # 9 direction cosines, row-major
    size: tuple[int, int, int]  # (x, y, z) voxels

    @classmethod
    def from_image(cls, image: sitk.Image) -> "Geometry":
        return cls(
            spacing=tuple(float(s) for s in image.GetSpacing()),
            origin=tuple(float(o) for o in image.GetOrigin()),
            direction=tuple(float(d) for d in image.GetDirection()),
            size=tuple(int(s) for s in image.GetSize()),
        )

    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        """The numpy shape of an array on this grid."""
        return tuple(reversed(self.size))

    def apply_to(self, image: sitk.Image) -> sitk.Image:
        """Set spacing, origin and direction of ``image`` (its size must already match)."""
        if tuple(image.GetSize()) != self.size:
            raise ValueError(f"Image of size {image.GetSize()} cannot take a geometry of size {self.size}.")
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image

    def to_dict(self) -> dict:
        return {
            "spacing": list(self.spacing),
            "origin": list(self.origin),
            "direction": list(self.direction),
            "size": list(self.size),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Geometry":
        return cls(
            spacing=tuple(float(v) for v in data["spacing"]),
            origin=tuple(float(v) for v in data["origin"]),
            direction=tuple(float(v) for v in data["direction"]),
            size=tuple(int(v) for v in data["size"]),
        )


def axial_axis(geometry: Geometry) -> tuple[int, int]:
    """(array axis of (Z, Y, X), +1 or -1): the axis closest to the physical inferior-superior axis and
    whether increasing indices go superior. Read from the direction cosines, never assumed."""
    direction = np.asarray(geometry.direction, float).reshape(3, 3)  # columns: array axes x, y, z
    superior = direction[2]  # the physical z (LPS: superior) component of each axis direction
    xyz_axis = int(np.argmax(np.abs(superior)))
    return 2 - xyz_axis, 1 if superior[xyz_axis] >= 0 else -1


def grid_differences(a: Geometry, b: Geometry) -> list[str]:
    """Human-readable differences between two grids beyond the tolerances (empty if equal)."""
    diffs = []
    if a.size != b.size:
        diffs.append(f"size {a.size} vs {b.size}")
    if not np.allclose(a.spacing, b.spacing, rtol=SPACING_RTOL, atol=0):
        diffs.append(f"spacing {_fmt(a.spacing)} vs {_fmt(b.spacing)}")
    if not np.allclose(a.origin, b.origin, rtol=0, atol=ORIGIN_ATOL_MM):
        diffs.append(f"origin {_fmt(a.origin)} vs {_fmt(b.origin)}")
    if not np.allclose(a.direction, b.direction, rtol=0, atol=DIRECTION_ATOL):
        diffs.append(f"direction {_fmt(a.direction)} vs {_fmt(b.direction)}")
    return diffs


def check_same_grid(reference: Geometry, other: Geometry, reference_path: Path | str, other_path: Path | str) -> None:
    """Raise :class:`ImageFormatError` naming both files when ``other`` is on another grid."""
    diffs = grid_differences(reference, other)
    if diffs:
        raise ImageFormatError(
            f"{other_path} is not on the grid of {reference_path}: {'; '.join(diffs)}. "
            f"Channels, masks and labels of a case must share one grid: resample or register them "
            f"onto the image grid first."
        )


def _fmt(values) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in values) + ")"
