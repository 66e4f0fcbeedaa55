"""The two axial slices of a case shown in the report: the one with the most lesion, and a brain
slice without lesion (the one with the most brain), with every panel's 2D data."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from disyre_v2.evaluation.case_files import EvaluationCase
from disyre_v2.evaluation.case_reader import LoadedCase, read_channel_slices


MARGIN = 4  # voxels of background kept around the brain


@dataclass
class CaseSlices:
    case_id: str
    indices: list[int]  # axial slice numbers (array axis 0)
    kinds: list[str]  # "most lesion" / "no lesion"
    score_map: np.ndarray  # (n, Y, X)
    label: np.ndarray
    brain: np.ndarray
    image: np.ndarray | None  # channel 0 of the case's images
    restoration: np.ndarray | None  # channel 0 of the restoration
    spacing_yx: tuple[float, float]


def choose_slices(label: np.ndarray, brain: np.ndarray) -> tuple[list[int], list[str]]:
    lesion = (label & brain).sum(axis=(1, 2))
    brain_area = brain.sum(axis=(1, 2))
    indices, kinds = [], []
    if lesion.any():
        indices.append(int(np.argmax(lesion)))
        kinds.append("most lesion")
    free = np.flatnonzero((lesion == 0) & (brain_area > 0))
    if free.size:
        indices.append(int(free[np.argmax(brain_area[free])]))
        kinds.append("no lesion")
    return indices, kinds


def in_plane_box(brain: np.ndarray, margin: int = MARGIN) -> tuple[slice, slice]:
    """The (Y, X) extent of the brain plus a margin: the report keeps only that much of each slice."""
    rows, cols = np.flatnonzero(brain.any(axis=(0, 2))), np.flatnonzero(brain.any(axis=(0, 1)))
    if rows.size == 0:
        return slice(None), slice(None)
    return (slice(max(rows[0] - margin, 0), rows[-1] + margin + 1),
            slice(max(cols[0] - margin, 0), cols[-1] + margin + 1))


def extract_slices(case: EvaluationCase, loaded: LoadedCase) -> CaseSlices:
    """The report's slices of a case, cropped to the brain (all cases are kept until the end)."""
    indices, kinds = choose_slices(loaded.label, loaded.brain)
    spacing = loaded.geometry.spacing
    rows, cols = in_plane_box(loaded.brain)

    def cut(volume: np.ndarray | None) -> np.ndarray | None:
        return None if volume is None else np.ascontiguousarray(volume[:, rows, cols])

    return CaseSlices(
        case_id=case.case_id, indices=indices, kinds=kinds,
        score_map=cut(loaded.score_map[indices]), label=cut(loaded.label[indices]), brain=cut(loaded.brain[indices]),
        image=cut(read_channel_slices(case.images, loaded.geometry, case.label, indices)),
        restoration=cut(read_channel_slices(case.restorations, loaded.geometry, case.label, indices)),
        spacing_yx=(float(spacing[1]), float(spacing[0])),
    )
