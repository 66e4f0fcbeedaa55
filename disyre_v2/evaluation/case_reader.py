"""Read one case's map, label and brain, checking that they share one grid and make sense."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from disyre_v2.evaluation.case_files import EvaluationCase
from disyre_v2.imageio import Geometry, ImageFormatError, read_case, read_image, read_mask
from disyre_v2.imageio.errors import NonFiniteImageError
from disyre_v2.imageio.geometry import grid_differences


@dataclass
class LoadedCase:
    score_map: np.ndarray  # float32 (Z, Y, X)
    label: np.ndarray  # bool (Z, Y, X), True anomalous
    brain: np.ndarray  # bool (Z, Y, X)
    geometry: Geometry

    @property
    def voxel_ml(self) -> float:
        return float(np.prod(self.geometry.spacing)) / 1000.0


def check_prediction_grid(label_geometry: Geometry, map_geometry: Geometry, label_path: Path, map_path: Path) -> None:
    diffs = grid_differences(label_geometry, map_geometry)
    if diffs:
        raise ImageFormatError(
            f"The anomaly map {map_path} is not on the grid of its label {label_path}: {'; '.join(diffs)}. "
            f"A map must be written on the raw grid of its test case (disyre_v2_predict does so); check that "
            f"-pred and -ref belong to the same dataset."
        )


def read_binary_label(path: Path) -> tuple[np.ndarray, Geometry]:
    """Label map as bool (> 0 anomalous) with its geometry; non-integer or negative values are refused."""
    array, geometry = read_image(path)
    if not np.array_equal(np.rint(array), array):
        raise ImageFormatError(f"{path} has non-integer values; a label map holds integer classes (> 0 anomalous). "
                               f"Threshold or round it, or check that -ref points at labels, not images or maps.")
    if array.min() < 0:
        raise ImageFormatError(f"{path} has negative label values (e.g. {array.min():g}); a label map holds 0 for "
                               f"normal and classes > 0 for lesions. Fix the file (e.g. negative values to 0).")
    return array > 0, geometry


def read_brain(case: EvaluationCase, geometry: Geometry) -> np.ndarray:
    """The brain of a case (see :mod:`case_files` for the order of sources); never empty."""
    if case.mask is not None:
        brain = read_mask(case.mask, reference=geometry, reference_path=case.label)
        source = f"The brain mask {case.mask}"
        fix = "Fix the mask, or give -mask a folder with correct masks."
    elif case.images:
        images, image_geometry = read_case(case.images)
        diffs = grid_differences(geometry, image_geometry)
        if diffs:
            raise ImageFormatError(f"{case.images[0]} is not on the grid of the label {case.label}: {'; '.join(diffs)}.")
        brain = (images > 0).any(axis=0)
        source = f"The brain of case {case.case_id}, taken as image > 0 from {case.images[0]},"
        fix = "Pass -mask DIR with brain masks."
    else:
        return np.ones(geometry.shape_zyx, bool)
    if not brain.any():
        raise ValueError(f"{source} is empty (no voxel > 0): case {case.case_id} has no brain to evaluate. {fix}")
    return brain


def load_case(case: EvaluationCase) -> LoadedCase:
    label, geometry = read_binary_label(case.label)
    try:
        score_map, map_geometry = read_image(case.prediction)
    except NonFiniteImageError as error:
        raise ImageFormatError(
            f"The anomaly map {error.path} contains {error.count} NaN or infinite voxel(s); a map must be finite "
            f"everywhere. Predict case {case.case_id} again (disyre_v2_predict) and check the model and its input "
            f"image, or replace the values in the map."
        ) from None
    check_prediction_grid(geometry, map_geometry, case.label, case.prediction)
    return LoadedCase(score_map, label, read_brain(case, geometry), geometry)


def read_channel_slices(paths: list[Path], geometry: Geometry, label_path: Path, slices: list[int]) -> np.ndarray | None:
    """Channel 0 of a multi-file image at the given axial slices, (len(slices), Y, X); None without files."""
    if not paths:
        return None
    array, image_geometry = read_image(paths[0])
    diffs = grid_differences(geometry, image_geometry)
    if diffs:
        raise ImageFormatError(f"{paths[0]} is not on the grid of the label {label_path}: {'; '.join(diffs)}.")
    return array[slices]
