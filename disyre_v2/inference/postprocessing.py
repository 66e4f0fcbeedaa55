"""Post-processing of the blended anomaly map on the preprocessed grid: a 3D median filter.

The restoration error of a 2D network is largest in thin shells where the image has its sharpest
edges (the brain boundary, the walls of the ventricles): ridges one voxel thick that no lesion has.
A median over a small cube (``inference.median_filter_size`` voxels of the plans' spacing; 0 or 1:
off) removes such ridges and keeps every region thicker than about half the cube, as residual maps
of reconstruction methods are commonly post-processed (a median filter of the residual: Kascenas et
al., MIDL 2022). Non-brain voxels count as 0, so a ridge along the brain boundary is outvoted by the
background and the voxels inside; the result is then floored at the smallest brain value of the
cube, so a brain voxel keeps a score above 0 wherever the map is above 0 (the edge of the brain,
where cortical lesions sit, is still scored; a plain median would zero the brain's convex corners).
Measured on the synthetic benchmark in documentation/explanation/ablation.md.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage


def median_filter_map(anomaly_map: np.ndarray, mask: np.ndarray, size: int) -> np.ndarray:
    """The (Z, Y, X) map median-filtered over ``size``³ voxels, brain voxels only (0 outside ``mask``)."""
    if size <= 1:
        return np.asarray(anomaly_map, np.float32)
    if size % 2 == 0:
        raise ValueError(f"plans.json inference.median_filter_size must be odd (a centred cube), got {size}.")
    brain = np.asarray(mask, bool)
    values = np.where(brain, anomaly_map, 0.0).astype(np.float32)
    median = ndimage.median_filter(values, size=size, mode="constant", cval=0.0)
    smallest = ndimage.minimum_filter(np.where(brain, values, np.inf), size=size, mode="constant", cval=np.inf)
    return (np.maximum(median, np.where(np.isfinite(smallest), smallest, 0.0)) * brain).astype(np.float32)
