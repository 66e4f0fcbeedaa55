"""disyre_v2_predict --binary: a calibrated threshold turns each map into a mask, a list of lesions
and a flag for the volume.

The voxel threshold is the calibration's healthy exceedance threshold at ``--voxel_fpr``; the
volume's p-value is its volume score's rank among the healthy volumes' (calibration.volume_p_value),
and the volume is flagged when p ≤ ``--volume_alpha``. All of it is recorded in each map's sidecar,
so shards written side by side are merged into one ``lesions.csv`` and ``volume_scores.csv``.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from disyre_v2.imageio.atomic import atomic_path
from disyre_v2.imageio.geometry import Geometry
from disyre_v2.inference.calibration import DEFAULT_MIN_LESION_ML, DEFAULT_VOLUME_ALPHA, Calibration, volume_p_value
from disyre_v2.inference.lesions import CONNECTIVITY, LESION_COLUMNS, find_lesions

LESIONS_FILE = "lesions.csv"
MASK_SUFFIX = "_mask"
__all__ = ["BinaryDecision", "DEFAULT_MIN_LESION_ML", "DEFAULT_VOLUME_ALPHA", "LESIONS_FILE", "mask_name",
           "read_sidecars", "write_lesions_csv"]


@dataclass(frozen=True)
class BinaryDecision:
    threshold: float
    voxel_fpr: float
    volume_alpha: float
    min_lesion_ml: float
    healthy_volume_scores: tuple[float, ...]
    calibration_file: str

    @classmethod
    def from_calibration(cls, calibration: Calibration, path: Path | str, voxel_fpr: float, volume_alpha: float,
                         min_lesion_ml: float) -> "BinaryDecision":
        return cls(calibration.voxel_threshold(voxel_fpr), float(voxel_fpr), float(volume_alpha), float(min_lesion_ml),
                   tuple(calibration.volume_scores), str(path))

    def record(self) -> dict:
        """What each map's sidecar records of the decision."""
        return {"threshold": self.threshold, "voxel_fpr": self.voxel_fpr, "volume_alpha": self.volume_alpha,
                "min_lesion_ml": self.min_lesion_ml, "connectivity": CONNECTIVITY,
                "healthy_volumes": len(self.healthy_volume_scores), "calibration": self.calibration_file}

    def apply(self, score_map: np.ndarray, brain: np.ndarray, geometry: Geometry, case_id: str,
              volume_score: float) -> tuple[np.ndarray, dict]:
        """The case's mask (uint8 Z, Y, X) and its sidecar fields: p-value, flag and lesion rows."""
        mask, lesions = find_lesions(score_map, brain, self.threshold, geometry, self.min_lesion_ml)
        p_value = volume_p_value(self.healthy_volume_scores, volume_score)
        return mask, {"binary": self.record(), "volume_p_value": p_value, "flagged": bool(p_value <= self.volume_alpha),
                      "lesions": [lesion.row(case_id) for lesion in lesions]}


def mask_name(case_id: str, ending: str) -> str:
    return f"{case_id}{MASK_SUFFIX}{ending}"


def write_lesions_csv(output_folder: Path, sidecars: list[dict]) -> Path:
    """``lesions.csv``: one row per lesion of every case predicted with --binary, cases in order."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(LESION_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for sidecar in sorted(sidecars, key=lambda s: s["case_id"]):
        for row in sidecar.get("lesions", []):
            writer.writerow({key: _format(value) for key, value in row.items()})
    path = output_folder / LESIONS_FILE
    with atomic_path(path) as tmp:
        tmp.write_text(buffer.getvalue())
    return path


def _format(value) -> str:
    return f"{value:.8g}" if isinstance(value, float) else str(value)


def read_sidecars(output_folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(output_folder.glob(".*.json"))]
