"""From a thresholded anomaly map to findings: a binary mask and a list of lesions.

A voxel is positive where its score is strictly above the threshold, inside the brain. Positive
voxels form lesions by 26-connectivity (voxels sharing a face, an edge or a corner); lesions smaller
than a minimum volume are removed from the mask and the list. Each lesion is described by its size,
its centroid in world millimetres and its bounding box, in the conventions of ITK (and of
SimpleITK, 3D Slicer's "LPS" and DICOM): physical coordinates are LPS (x grows to the patient's
left, y to posterior, z to superior; NIfTI viewers that show RAS print x and y negated), and voxel
indices are ITK's (i, j, k) = (x, y, z) order, 0-based, i.e. the reverse of the NumPy array's
(Z, Y, X) axes.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from disyre_v2.imageio.geometry import Geometry

CONNECTIVITY = 26
_STRUCTURE = ndimage.generate_binary_structure(3, 3)  # 26-connectivity

LESION_COLUMNS = ("case_id", "lesion_id", "voxels", "volume_ml",
                  "centroid_x_mm", "centroid_y_mm", "centroid_z_mm",
                  "bbox_i_min", "bbox_j_min", "bbox_k_min", "bbox_i_max", "bbox_j_max", "bbox_k_max",
                  "max_score", "mean_score")


@dataclass(frozen=True)
class Lesion:
    lesion_id: int
    voxels: int
    volume_ml: float
    centroid_mm: tuple[float, float, float]  # LPS world coordinates
    bbox_min: tuple[int, int, int]  # ITK (i, j, k) voxel index, inclusive
    bbox_max: tuple[int, int, int]
    max_score: float
    mean_score: float

    def row(self, case_id: str) -> dict:
        return {"case_id": case_id, "lesion_id": self.lesion_id, "voxels": self.voxels, "volume_ml": self.volume_ml,
                **dict(zip(("centroid_x_mm", "centroid_y_mm", "centroid_z_mm"), self.centroid_mm)),
                **dict(zip(("bbox_i_min", "bbox_j_min", "bbox_k_min"), self.bbox_min)),
                **dict(zip(("bbox_i_max", "bbox_j_max", "bbox_k_max"), self.bbox_max)),
                "max_score": self.max_score, "mean_score": self.mean_score}


def voxel_volume_ml(geometry: Geometry) -> float:
    return float(np.prod(geometry.spacing)) / 1000.0


def index_to_world(index_xyz: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Continuous ITK indices (N, 3) in (i, j, k) order → LPS millimetres: origin + D · (spacing ∘ index)."""
    direction = np.asarray(geometry.direction, np.float64).reshape(3, 3)
    scaled = np.asarray(index_xyz, np.float64) * np.asarray(geometry.spacing, np.float64)
    return np.asarray(geometry.origin, np.float64) + scaled @ direction.T


def label_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """26-connected components of a boolean (Z, Y, X) mask: labels 1..n, 0 background."""
    labels, count = ndimage.label(np.asarray(mask, bool), structure=_STRUCTURE)
    return labels, int(count)


def find_lesions(score_map: np.ndarray, brain: np.ndarray, threshold: float, geometry: Geometry,
                 min_volume_ml: float = 0.0) -> tuple[np.ndarray, list[Lesion]]:
    """The binary mask (uint8 Z, Y, X) of brain voxels scoring above ``threshold``, without lesions
    smaller than ``min_volume_ml``, and its lesions, largest first (ties in raster order)."""
    score_map = np.asarray(score_map, np.float32)
    positive = (score_map > threshold) & np.asarray(brain, bool)
    labels, count = label_components(positive)
    keep = np.zeros(count + 1, bool)
    lesions: list[tuple[int, int, Lesion]] = []
    if count:
        unit_ml = voxel_volume_ml(geometry)
        index = np.arange(1, count + 1)
        sizes = ndimage.sum_labels(positive, labels, index).astype(np.int64)
        maxima = ndimage.maximum(score_map, labels, index)
        means = ndimage.mean(score_map, labels, index)
        centroids_zyx = np.asarray(ndimage.center_of_mass(positive, labels, index), np.float64).reshape(-1, 3)
        boxes = ndimage.find_objects(labels)
        centroids_mm = index_to_world(centroids_zyx[:, ::-1], geometry)
        for i in range(count):
            if sizes[i] * unit_ml < min_volume_ml:
                continue
            keep[i + 1] = True
            box = boxes[i]
            lesion = Lesion(0, int(sizes[i]), float(sizes[i] * unit_ml), tuple(float(c) for c in centroids_mm[i]),
                            tuple(int(s.start) for s in box[::-1]), tuple(int(s.stop - 1) for s in box[::-1]),
                            float(maxima[i]), float(means[i]))
            lesions.append((-lesion.voxels, i, lesion))
    mask = keep[labels].astype(np.uint8)
    ordered = [lesion for _, _, lesion in sorted(lesions, key=lambda item: item[:2])]
    return mask, [replace(lesion, lesion_id=n) for n, lesion in enumerate(ordered, start=1)]
