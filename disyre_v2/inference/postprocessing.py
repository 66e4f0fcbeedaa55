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

On an accelerator the filter runs in torch where the map already is (:func:`median_filter_torch`, a
chunk of slices at a time), equal to the scipy reference (:func:`median_filter_scipy`) exactly
(tests/test_postprocessing.py): a 5³ median of a cropped 1 mm volume takes about 7 s with scipy on
one core, more than the GPU scoring of the volume. On the CPU scipy is the faster of the two and is
used. Figures: documentation/explanation/performance.md ("Median filter cost").
"""
from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

# Bytes of gathered neighbourhoods per chunk of slices: bounds the filter's extra memory.
CHUNK_BYTES = {"cuda": 1 << 30, "cpu": 1 << 27}


def check_median_filter_size(size: int, where: str = "plans.json inference.median_filter_size") -> int:
    """``size`` if it is 0, 1 (both: off) or an odd side of a centred cube; else a ValueError naming ``where``."""
    size = int(size)
    if size < 0 or (size > 1 and size % 2 == 0):
        raise ValueError(f"{where} must be 0 (off) or an odd number of voxels (a centred cube), got {size}.")
    return size


def median_filter_map(anomaly_map: np.ndarray | torch.Tensor, mask: np.ndarray | torch.Tensor, size: int,
                      device: torch.device | str | None = None) -> np.ndarray:
    """The (Z, Y, X) map median-filtered over ``size``³ voxels, brain voxels only (0 outside ``mask``).

    On an accelerator (``device``, default: where ``anomaly_map`` is) in torch; on the CPU with scipy,
    which is faster there than torch's per-voxel median (performance.md, "Median filter cost")."""
    if check_median_filter_size(size) <= 1:
        return (anomaly_map.cpu().numpy() if torch.is_tensor(anomaly_map) else np.asarray(anomaly_map)).astype(np.float32)
    device = torch.device(device) if device is not None else (
        anomaly_map.device if torch.is_tensor(anomaly_map) else torch.device("cpu"))
    if device.type == "cpu":
        as_numpy = [a.cpu().numpy() if torch.is_tensor(a) else a for a in (anomaly_map, mask)]
        return median_filter_scipy(*as_numpy, size)
    values = anomaly_map if torch.is_tensor(anomaly_map) else torch.from_numpy(np.ascontiguousarray(anomaly_map, np.float32))
    brain = mask if torch.is_tensor(mask) else torch.from_numpy(np.ascontiguousarray(mask, bool))
    return median_filter_torch(values.to(device), brain.to(device), size).cpu().numpy()


@torch.inference_mode()
def median_filter_torch(anomaly_map: torch.Tensor, brain: torch.Tensor, size: int,
                        chunk_bytes: int | None = None) -> torch.Tensor:
    """:func:`median_filter_scipy` in torch, on the tensors' device: float32 (Z, Y, X).

    The cube holds size³ values, an odd count, so its median is one of them and the result equals
    scipy's exactly. Only brain voxels are computed (the rest is 0), a chunk of slices at a time, so
    memory stays at ``chunk_bytes`` (default ``CHUNK_BYTES`` of the device) whatever the volume."""
    size = check_median_filter_size(size)
    brain = brain.to(torch.bool)
    values = torch.where(brain, anomaly_map.to(torch.float32), 0.0)
    if size <= 1:
        return values
    radius = size // 2
    # Floor: the smallest brain value of each cube, a separable minimum (background and outside +inf,
    # i.e. -inf for the max-pool of the negated map).
    negated = torch.where(brain, -values, -torch.inf)[None, None]
    for axis in range(3):
        kernel = [1, 1, 1]
        kernel[axis] = size
        padding = [0, 0, 0]
        padding[axis] = radius
        negated = torch.nn.functional.max_pool3d(negated, kernel, stride=1, padding=padding)
    smallest = -negated[0, 0]
    padded = torch.nn.functional.pad(values, (radius,) * 6)  # zeros outside the volume, as scipy's cval
    depth, height, width = values.shape
    per_slice = height * width * size ** 3 * 4
    step = max(1, int((chunk_bytes or CHUNK_BYTES.get(values.device.type, CHUNK_BYTES["cpu"])) // per_slice))
    result = torch.zeros_like(values)
    for start in range(0, depth, step):
        stop = min(start + step, depth)
        inside = brain[start:stop]
        if not inside.any():
            continue
        # (n, Y, X, size, size, size) views of every voxel's cube; only the brain's are gathered.
        cubes = padded[start:stop + 2 * radius].unfold(0, size, 1).unfold(1, size, 1).unfold(2, size, 1)
        median = cubes[inside].reshape(-1, size ** 3).median(dim=1).values
        result[start:stop][inside] = torch.maximum(median, smallest[start:stop][inside])
    return result


def median_filter_scipy(anomaly_map: np.ndarray, mask: np.ndarray, size: int) -> np.ndarray:
    """The reference: the same filter with scipy.ndimage, on the CPU (single-threaded)."""
    if check_median_filter_size(size) <= 1:
        return np.asarray(anomaly_map, np.float32)
    brain = np.asarray(mask, bool)
    values = np.where(brain, anomaly_map, 0.0).astype(np.float32)
    median = ndimage.median_filter(values, size=size, mode="constant", cval=0.0)
    smallest = ndimage.minimum_filter(np.where(brain, values, np.inf), size=size, mode="constant", cval=np.inf)
    return (np.maximum(median, np.where(np.isfinite(smallest), smallest, 0.0)) * brain).astype(np.float32)
