"""What every lesion model produces, and the small helpers they share.

A lesion is a list of compartments (necrosis, enhancing rim, edema, cavity, gliosis, ...). Each
has a partial-volume fraction on a box of the subject crop, a target appearance per channel and a
local strength. The ground-truth label of a voxel is the label of its dominant compartment where
the compartments together cover at least half of it, so labels mark exactly the voxels whose
intensity the lesion changed, up to the one-voxel partial-volume edge.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

LABEL_COVERAGE = 0.5  # a voxel is lesion when lesion compartments fill at least half of it
# ... and when they change its intensity visibly (in some channel, in units of the WM intensity):
# where a lesion happens to match what it replaced (edema beside CSF), nothing marks it.
MIN_VISIBLE_CHANGE = 0.02


@dataclass(frozen=True)
class Appearance:
    """Target intensity in one channel: ``factor`` times the subject's pure "wm" or "csf" level,
    or (reference "mul") ``factor`` times the healthy intensity of the voxel itself."""

    reference: str
    factor: float

    def __post_init__(self):
        if self.reference not in ("wm", "gm", "csf", "mul"):
            raise ValueError(f"Unknown appearance reference {self.reference!r}.")


@dataclass
class Compartment:
    name: str
    label: int
    box: tuple[slice, slice, slice]  # where ``fraction`` sits in the subject crop
    fraction: np.ndarray  # partial-volume fraction in [0, 1]
    appearance: dict[str, Appearance]  # per channel ("T1", "T2")
    strength: np.ndarray | np.float32 = np.float32(1.0)  # share of the way to the target, in (0, 1]

    def volume_ml(self, spacing: float) -> float:
        return float(self.fraction.sum(dtype=np.float64)) * spacing ** 3 / 1000.0


@dataclass
class Lesion:
    kind: str
    compartments: list[Compartment] = field(default_factory=list)
    info: dict = field(default_factory=dict)  # JSON-ready description for the sidecar

    def add(self, compartment: Compartment, coverage: np.ndarray) -> None:
        """Append ``compartment``, trimmed so that the lesion never fills more than the whole voxel.

        ``coverage`` (crop-sized, updated in place) is the fraction already taken by this lesion.
        """
        free = 1.0 - coverage[compartment.box]
        compartment.fraction = np.minimum(compartment.fraction, np.maximum(free, 0.0)).astype(np.float32)
        coverage[compartment.box] += compartment.fraction
        self.compartments.append(compartment)

    def label_map(self, shape: tuple[int, int, int]) -> np.ndarray:
        """uint8 labels on the crop: the dominant compartment's label where coverage >= 0.5."""
        total = np.zeros(shape, np.float32)
        best = np.zeros(shape, np.float32)
        label = np.zeros(shape, np.uint8)
        for compartment in self.compartments:
            box, f = compartment.box, compartment.fraction
            total[box] += f
            wins = f > best[box]
            best[box] = np.where(wins, f, best[box])
            label[box] = np.where(wins, np.uint8(compartment.label), label[box])
        label[total < LABEL_COVERAGE] = 0
        return label


@dataclass(frozen=True)
class Placement:
    """Where a lesion goes, decided on the healthy subject before its final warp."""

    centre_vox: np.ndarray  # index in the subject crop
    expansion: object | None = None  # a RadialExpansion for a mass effect, or None
    params: dict = field(default_factory=dict)


def finalise(lesion: Lesion, change: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Label and intensity change, made consistent: label = coverage >= 0.5 and a visible change;
    changes farther than one voxel from any label (slivers of partial volume) are dropped, so every
    changed voxel is a lesion voxel or its partial-volume edge."""
    shape = change.shape[1:]
    label = lesion.label_map(shape)
    label[np.abs(change).max(axis=0) < MIN_VISIBLE_CHANGE] = 0
    keep = ndimage.binary_dilation(label > 0, ndimage.generate_binary_structure(3, 3))
    return label, change * keep


def box_around(centre: np.ndarray, radius_vox: float, shape: tuple[int, int, int]) -> tuple[slice, slice, slice]:
    """Index box of half-width ``radius_vox`` around ``centre`` (voxel indices), clipped to ``shape``."""
    r = int(np.ceil(radius_vox)) + 1
    return tuple(slice(max(int(c) - r, 0), min(int(c) + r + 1, n)) for c, n in zip(np.round(centre), shape))


def box_axes_mm(box: tuple[slice, slice, slice], spacing: float, centre_vox: np.ndarray) -> list[np.ndarray]:
    """Positions (mm) of the box voxels relative to ``centre_vox`` along each axis."""
    return [(np.arange(b.start, b.stop) - c) * spacing for b, c in zip(box, centre_vox)]


def partial_volume(phi_mm: np.ndarray, spacing: float) -> np.ndarray:
    """Fraction of a voxel inside the surface phi = 0 (phi < 0 inside, phi ~ signed distance in mm).

    A linear ramp one voxel wide: 1 at phi <= -spacing/2, 0.5 on the surface, 0 at phi >= spacing/2.
    """
    return np.clip(0.5 - phi_mm / np.float32(spacing), 0.0, 1.0).astype(np.float32)


def choose_voxel(rng: np.random.Generator, candidates: np.ndarray) -> np.ndarray | None:
    """A uniformly random voxel index (3,) among the True voxels of ``candidates``; None if empty."""
    flat = np.flatnonzero(candidates)
    if flat.size == 0:
        return None
    return np.array(np.unravel_index(flat[rng.integers(flat.size)], candidates.shape))


def log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """Heavy-tailed sizes: uniform in log between ``low`` and ``high``."""
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))
