"""Anomaly maps back on the patient's own scan (disyre_v2_predict --native_space PREPARED).

disyre_v2_prepare stored, per case, the forward transform (template point → native point of the
first channel, ``preparation/CASE.tfm``) and the native grid (``preparation/CASE.json``). A map on
the template grid is resampled onto the native grid through the transform's inverse (exact for an
affine), linearly, so it overlays the scan the clinician opened, with that file's affine.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk

from disyre_v2.errors import UserError
from disyre_v2.preparation import PREPARATION_FOLDER
from disyre_v2.preparation.prepare_case import to_native
from disyre_v2.imageio.geometry import Geometry
from disyre_v2.preprocessing.inverse import extend_beyond_mask

NATIVE_FOLDER = "native"


@dataclass(frozen=True)
class NativeSpace:
    """What carries one case's maps back: the native grid and the forward transform file."""

    case_id: str
    grid: Geometry
    transform_file: Path

    def resample(self, array: np.ndarray, geometry: Geometry, *, labels: bool = False) -> sitk.Image:
        """``array`` (Z, Y, X) on the template-space ``geometry`` → an image on the native grid."""
        image = geometry.apply_to(sitk.GetImageFromArray(np.ascontiguousarray(array)))
        reference = self.grid.apply_to(sitk.Image(list(self.grid.size), sitk.sitkUInt8))
        return to_native(image, reference, sitk.ReadTransform(str(self.transform_file)), labels=labels)

    def resample_map(self, anomaly_map: np.ndarray, brain: np.ndarray, geometry: Geometry) -> sitk.Image:
        """An anomaly map (0 outside ``brain``) on the native grid, exported like the input grid's map:
        first extended beyond the brain by its nearest brain value, so that linear interpolation at
        the brain's edge does not mix in the zero background (which diluted edge scores, where
        cortical lesions sit), then resampled, then masked with the brain carried to the native grid
        (nearest neighbour): every native brain voxel scored, every other one exactly 0."""
        brain = np.asarray(brain, bool)
        extended = _extend_near(np.asarray(anomaly_map, np.float32), brain)
        resampled = self.resample(extended, geometry)
        native_brain = sitk.GetArrayFromImage(self.resample(brain.astype(np.uint8), geometry, labels=True)) > 0
        scores = np.maximum(sitk.GetArrayFromImage(resampled), 0).astype(np.float32) * native_brain
        image = sitk.GetImageFromArray(scores)
        image.CopyInformation(resampled)
        return image


def _extend_near(array: np.ndarray, brain: np.ndarray, margin: int = 2) -> np.ndarray:
    """:func:`extend_beyond_mask` within ``margin`` voxels of the brain's bounding box: linear
    interpolation at a native brain voxel reads template voxels at most one voxel from the brain, and
    the distance transform of the whole template grid would cost seconds per case."""
    if not brain.any():
        return array
    box = tuple(slice(max(int(i.min()) - margin, 0), int(i.max()) + margin + 1) for i in np.nonzero(brain))
    extended = np.zeros_like(array)
    extended[box] = extend_beyond_mask(array[box], brain[box])
    return extended


def preparation_folder(prepared: Path | str) -> Path:
    """``PREPARED/preparation`` (or PREPARED itself when it is that folder)."""
    prepared = Path(prepared)
    folder = prepared if prepared.name == PREPARATION_FOLDER else prepared / PREPARATION_FOLDER
    if not folder.is_dir():
        raise UserError("no preparation/ folder with the cases' transforms", prepared,
                        "give the output folder of disyre_v2_prepare (or of a converter run with --prepare)")
    return folder


def load_native_spaces(prepared: Path | str, case_ids: Sequence[str]) -> dict[str, NativeSpace]:
    """The native space of every case, checked before any prediction starts."""
    folder = preparation_folder(prepared)
    spaces = {}
    for case_id in case_ids:
        record_file = folder / f"{case_id}.json"
        if not record_file.is_file():
            raise UserError(f"case {case_id} has no preparation record", record_file,
                            "predict cases prepared by disyre_v2_prepare into that folder, or drop --native_space")
        record = json.loads(record_file.read_text())
        transform_file = folder / record.get("transform", f"{case_id}.tfm")
        if not transform_file.is_file():
            raise UserError(f"case {case_id} has no transform file", transform_file,
                            "prepare the case again (its preparation is incomplete)")
        spaces[case_id] = NativeSpace(case_id, Geometry.from_dict(record["native_grid"]), transform_file)
    return spaces
