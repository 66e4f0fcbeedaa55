"""A procedurally generated, seeded library of irregular smooth 3D blobs (method_numbers.md ("Anomaly synthesis")).

Each blob is a union of randomly oriented ellipsoids that overlap near the centre of a small cube,
smoothed and re-thresholded so its surface is smooth, then cropped to its bounding box. Slices of
these blobs give the "irregular" anomaly shapes. The library depends only on (size, seed), so it is
built once per process and shared by every transform in it (workers rebuild the same library).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import ndimage

# Resolution of the generation cube; the shapes are rescaled to the plans' sizes when drawn, so
# this only sets how finely the blob surface is sampled.
GRID_SIZE = 32
# Slices whose area is below this fraction of the blob's largest cross-section along the same axis
# are not used: they would give slivers instead of lesion-like shapes.
MIN_SLICE_AREA_FRACTION = 0.5
# Seed of the library when none is given: the same shapes in every process and run.
DEFAULT_LIBRARY_SEED = 1234


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random 3D rotation matrix (QR of a Gaussian matrix, sign-fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def generate_blob(rng: np.random.Generator, grid: int = GRID_SIZE) -> np.ndarray:
    """One smooth irregular blob as a boolean volume cropped to its bounding box."""
    coords = np.stack(np.meshgrid(*(np.arange(grid, dtype=np.float64),) * 3, indexing="ij"), -1)
    centre = (grid - 1) / 2.0
    blob = np.zeros((grid,) * 3, dtype=bool)
    # A chain of lobes: each ellipsoid is centred near the surface of an earlier one, so the union
    # is connected but lobulated rather than round.
    centres = [np.full(3, centre)]
    for _ in range(int(rng.integers(3, 9))):
        radii = rng.uniform(0.08, 0.24, size=3) * grid
        anchor = centres[int(rng.integers(len(centres)))]
        step = rng.standard_normal(3)
        step *= rng.uniform(0.1, 0.2) * grid / np.linalg.norm(step)
        middle = np.clip(anchor + step, 0.3 * grid, 0.7 * grid)
        centres.append(middle)
        local = (coords - middle) @ _random_rotation(rng)
        blob |= np.sum((local / radii) ** 2, axis=-1) <= 1.0
    # Smooth the union so the junctions between ellipsoids are rounded, not creased.
    smooth = ndimage.gaussian_filter(blob.astype(np.float32), sigma=grid / 24.0) >= 0.5
    labels, n = ndimage.label(smooth)
    if n > 1:  # keep the largest component: one lesion, not scattered islands
        sizes = ndimage.sum_labels(smooth, labels, index=np.arange(1, n + 1))
        smooth = labels == (1 + int(np.argmax(sizes)))
    box = ndimage.find_objects(smooth.astype(np.int8))[0]
    return np.ascontiguousarray(smooth[box])


class BlobLibrary:
    """``size`` blobs from ``seed``; :meth:`sample_slice` returns a random usable 2D slice."""

    def __init__(self, size: int, seed: int = DEFAULT_LIBRARY_SEED, grid: int = GRID_SIZE):
        if size < 1:
            raise ValueError(f"a blob library needs at least one blob, got size={size}")
        rng = np.random.default_rng(seed)
        self.size, self.seed, self.grid = int(size), int(seed), int(grid)
        self.blobs: list[np.ndarray] = []
        # Per blob and axis, the slice indices with enough area (see MIN_SLICE_AREA_FRACTION).
        self.usable: list[list[np.ndarray]] = []
        while len(self.blobs) < self.size:
            blob = generate_blob(rng, grid)
            if min(blob.shape) < 3:  # degenerate draw (very rare): draw again, still seeded
                continue
            self.blobs.append(blob)
            per_axis = []
            for axis in range(3):
                other = tuple(a for a in range(3) if a != axis)
                area = blob.sum(axis=other)
                per_axis.append(np.flatnonzero(area >= MIN_SLICE_AREA_FRACTION * area.max()))
            self.usable.append(per_axis)
        # The largest extent of each blob: the drawing code maps it to the target size.
        self.extents = np.array([max(b.shape) for b in self.blobs], dtype=np.float64)

    def sample_slice(self, rng: np.random.Generator) -> tuple[np.ndarray, float]:
        """A random slice (float32 0/1) and the extent of the blob it came from, in grid pixels."""
        index = int(rng.integers(self.size))
        axis = int(rng.integers(3))
        usable = self.usable[index][axis]
        position = int(usable[rng.integers(len(usable))])
        section = np.take(self.blobs[index], position, axis=axis).astype(np.float32)
        return section, float(self.extents[index])


@lru_cache(maxsize=4)
def get_blob_library(size: int, seed: int = DEFAULT_LIBRARY_SEED) -> BlobLibrary:
    """The process-wide library for (size, seed), built on first use."""
    return BlobLibrary(size, seed)


class LazyBlobLibrary:
    """``library``: the blob library of ``library_size()`` blobs (seed ``library_seed``, None: the default),
    built on first use and shared per process (lru_cache), never pickled into worker processes."""

    library_seed: int | None = None
    _library: BlobLibrary | None = None

    def library_size(self) -> int:
        raise NotImplementedError

    @property
    def library(self) -> BlobLibrary:
        if self._library is None:
            size = self.library_size()
            self._library = (get_blob_library(size) if self.library_seed is None
                             else get_blob_library(size, self.library_seed))
        return self._library

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_library"] = None
        return state
