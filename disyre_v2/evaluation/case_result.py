"""What one pass over a case keeps: its sparse histogram, volume and slice scores, lesion size."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from disyre_v2.evaluation.case_reader import LoadedCase
from disyre_v2.evaluation.error_analysis import CaseBands
from disyre_v2.evaluation.ranking import slice_scores
from disyre_v2.inference.volume_score import volume_score
from disyre_v2.evaluation.sparse_histogram import SparseHistogram


@dataclass
class CaseResult:
    case_id: str
    histogram: SparseHistogram  # brain voxels of the case
    volume_score: float
    slice_indices: np.ndarray
    slice_scores: np.ndarray
    slice_anomalous: np.ndarray
    lesion_voxels: int  # label > 0 anywhere on the grid
    lesion_voxels_in_brain: int
    brain_voxels: int
    voxel_ml: float
    brain_source: str
    bands: CaseBands  # lesion-free voxels per distance and position band (error analysis)
    kind: str | None = None

    @property
    def anomalous(self) -> bool:
        return self.lesion_voxels_in_brain > 0

    def at_threshold(self, threshold: float) -> dict:
        """Per-case metrics once the pooled threshold is known (score >= threshold is anomalous)."""
        summary = self.histogram.summary()
        defined = math.isfinite(threshold)  # undefined when no case has a lesion
        tp, fp = self.histogram.counts_at_or_above(threshold) if defined else (None, None)
        return {
            "case_id": self.case_id,
            **({"kind": self.kind} if self.kind is not None else {}),
            "anomalous": self.anomalous,
            "average_precision": summary.average_precision,
            "dice": self.histogram.dice_at(threshold) if defined else None,
            "best_dice": summary.best_dice,
            "predicted_voxels": tp + fp if defined else None,
            "true_positive_voxels": tp,
            "lesion_voxels": self.lesion_voxels,
            "lesion_voxels_in_brain": self.lesion_voxels_in_brain,
            "lesion_volume_ml": self.lesion_voxels * self.voxel_ml,
            "brain_voxels": self.brain_voxels,
            "volume_score": self.volume_score,
            "brain": self.brain_source,
        }


def measure_case(case_id: str, loaded: LoadedCase, brain_source: str, given_volume_score: float | None,
                 slice_reduction: str, drop_bits: int) -> CaseResult:
    brain, label, score_map = loaded.brain, loaded.label, loaded.score_map
    histogram = SparseHistogram.from_scores(score_map[brain], label[brain], drop_bits)
    indices, scores, anomalous = slice_scores(score_map, label, brain, slice_reduction)
    return CaseResult(
        case_id=case_id, histogram=histogram,
        volume_score=volume_score(score_map, brain) if given_volume_score is None else float(given_volume_score),
        slice_indices=indices, slice_scores=scores, slice_anomalous=anomalous,
        lesion_voxels=int(label.sum()), lesion_voxels_in_brain=histogram.n_positive,
        brain_voxels=int(brain.sum()), voxel_ml=loaded.voxel_ml, brain_source=brain_source,
        bands=CaseBands.measure(score_map, label, brain, loaded.geometry, drop_bits),
    )
