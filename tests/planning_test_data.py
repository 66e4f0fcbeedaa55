"""Tiny raw datasets for the planning and preprocessing tests: brain-like blobs of several tissue
classes, written with RawDatasetWriter under a temporary folder."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from disyre_v2.dataset_conversion.raw_dataset_writer import RawDatasetWriter
from disyre_v2.imageio.geometry import Geometry
from tests.nifti_factory import OBLIQUE_DIRECTION

# At 1 mm the brain spans about 19x29x26 voxels: large enough for both configurations (at 2 mm the
# median slice stays above the smallest patch of 8 px).
SHAPE = (24, 36, 32)
# Tissue intensities from the inside out (WM-like core, GM-like shell, CSF-like rim) per channel:
# T1 bright core, T2 inverted, as in real scans.
T1_CLASSES = (100.0, 60.0, 30.0)
T2_CLASSES = (40.0, 70.0, 100.0)


def brain_channels(shape=SHAPE, seed: int = 0, channels: Sequence[str] = ("T1",), noise: float = 2.0) -> np.ndarray:
    """(C, Z, Y, X) float32: an ellipsoid of three nested tissue classes, background exactly 0."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    # A slightly different brain per case: radii jitter by seed.
    radii = 0.8 + 0.05 * rng.uniform(-1, 1, size=3)
    r = np.sqrt(sum((g / a) ** 2 for g, a in zip(grids, radii)))
    out = []
    for name in channels:
        classes = T2_CLASSES if name.upper().startswith("T2") else T1_CLASSES
        volume = np.select([r < 0.45, r < 0.75, r < 1.0], classes, 0.0)
        brain = r < 1.0
        volume[brain] += rng.normal(0, noise, size=int(brain.sum()))
        out.append(np.maximum(volume, 0.0) * brain)
    return np.stack(out).astype(np.float32)


def geometry_for(shape=SHAPE, spacing=(1.0, 1.0, 1.0), direction=OBLIQUE_DIRECTION, origin=(-10.0, 5.0, 3.0)) -> Geometry:
    return Geometry(spacing=tuple(float(s) for s in spacing), origin=tuple(origin), direction=tuple(direction),
                    size=tuple(reversed(shape)))


def write_raw_dataset(raw_base: Path, dataset_id: int = 1, name: str = "Tiny", n_train: int = 5, n_test: int = 0,
                      channels: Sequence[str] = ("T1",), shape=SHAPE, spacing=(1.0, 1.0, 1.0),
                      direction=OBLIQUE_DIRECTION, with_masks: bool = True, noise: float = 2.0) -> Path:
    """A raw dataset folder with ``n_train`` healthy cases (and ``n_test`` test cases with labels)."""
    with RawDatasetWriter(dataset_id, name, list(channels), raw_base=raw_base) as writer:
        for i in range(n_train):
            data = brain_channels(shape, seed=i, channels=channels, noise=noise)
            writer.add_arrays("Tr", f"case{i:02d}", data, geometry_for(shape, spacing, direction))
        for i in range(n_test):
            data = brain_channels(shape, seed=100 + i, channels=channels, noise=noise)
            label = np.zeros(shape, np.uint8)
            label[8:12, 10:14, 8:12] = 1
            writer.add_arrays("Ts", f"test{i:02d}", data, geometry_for(shape, spacing, direction), label=label)
        folder = writer.target
    if not with_masks:
        drop_training_masks(folder)
    return folder


def drop_training_masks(folder: Path) -> None:
    """Remove masksTr, so that the masks must be derived as any channel > 0."""
    for path in (folder / "masksTr").iterdir():
        path.unlink()
    (folder / "masksTr").rmdir()
    dataset_json = json.loads((folder / "dataset.json").read_text())
    dataset_json["masksTr"] = False
    (folder / "dataset.json").write_text(json.dumps(dataset_json))
