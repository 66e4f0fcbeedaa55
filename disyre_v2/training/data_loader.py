"""Training batches of 2D slices from the preprocessed 3D volumes (method_numbers.md ("Training")).

A batch is ``n_volumes`` random volumes × ``n_slices`` random slices that contain brain: every
slice the predictor scores (method_numbers.md ("Training"): all non-empty axial slices; the synthesis leaves the
slices too small for an anomaly clean, see ``min_brain_fraction``). Each slice
is cropped to its brain bounding box, then randomly cropped to the patch size if larger or centred
and zero-padded if smaller. Volumes are opened memory-mapped, so a batch reads only its slices.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from batchgenerators.dataloading.data_loader import DataLoader

from disyre_v2.errors import UserError
from disyre_v2.processes.worker_lifetime import die_with_parent



def worker_seed_sequence(seed: int, fold: int | str, rank: int, worker: int) -> np.random.SeedSequence:
    """Independent, reproducible streams for every (seed, fold, rank, worker)."""
    fold_key = 5 if str(fold) == "all" else int(fold)
    return np.random.SeedSequence([int(seed), fold_key, int(rank), int(worker)])


def brain_bounding_box_2d(mask: np.ndarray) -> tuple[slice, slice]:
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


CROP_MODES = ("slice_brain_box", "inference_windows")
# Tries to draw a window holding brain before falling back to the slice's brain box.
_WINDOW_TRIES = 20


def window_with_brain(image: np.ndarray, mask: np.ndarray, patch: Sequence[int], rng: np.random.Generator):
    """A P×P window placed as the predictor places them: anywhere on the slice of the (3D-cropped)
    volume, centred zero padding where the slice is smaller than P, holding at least one brain pixel.
    Returns None when no drawn window holds brain."""
    padded_shape = [max(size, target) for size, target in zip(mask.shape, patch)]
    offsets = [(p - s) // 2 for p, s in zip(padded_shape, mask.shape)]
    padded_mask = np.zeros(padded_shape, bool)
    padded_mask[offsets[0]:offsets[0] + mask.shape[0], offsets[1]:offsets[1] + mask.shape[1]] = mask
    for _ in range(_WINDOW_TRIES):
        top, left = (int(rng.integers(0, p - t + 1)) for p, t in zip(padded_shape, patch))
        window = padded_mask[top:top + patch[0], left:left + patch[1]]
        if window.any():
            padded = np.zeros((image.shape[0], *padded_shape), np.float32)
            padded[:, offsets[0]:offsets[0] + mask.shape[0], offsets[1]:offsets[1] + mask.shape[1]] = image
            return padded[:, top:top + patch[0], left:left + patch[1]], window.astype(np.uint8)
    return None


def crop_or_pad(image: np.ndarray, mask: np.ndarray, patch: Sequence[int], rng: np.random.Generator):
    """Random crop of (C, H, W)/(H, W) arrays to ``patch`` where larger, centred zero padding where smaller."""
    out_image = np.zeros((image.shape[0], *patch), np.float32)
    out_mask = np.zeros(tuple(patch), np.uint8)
    src, dst = [], []
    for size, target in zip(mask.shape, patch):
        if size >= target:
            start = int(rng.integers(0, size - target + 1))
            src.append(slice(start, start + target))
            dst.append(slice(0, target))
        else:
            before = (target - size) // 2
            src.append(slice(0, size))
            dst.append(slice(before, before + size))
    out_image[(slice(None), *dst)] = image[(slice(None), *src)]
    out_mask[tuple(dst)] = mask[tuple(src)]
    return out_image, out_mask


def _open_array(path: Path) -> np.ndarray:
    """A memory-mapped preprocessed array; a truncated or corrupt file is named with the fix."""
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise UserError(f"the preprocessed array is truncated or corrupt ({error})", path,
                        "re-run disyre_v2_plan_and_preprocess for this dataset: it redoes every case whose "
                        "files are incomplete") from None


class SliceDataLoader(DataLoader):
    """batchgenerators DataLoader yielding ``{"data": (B, C, P, P) float32, "seg": (B, 1, P, P) uint8,
    "seed": int, "keys": [...]}`` with B = n_volumes × n_slices.

    ``seed`` is drawn from the loader's own stream for the transforms that follow (see
    :class:`disyre_v2.training.augmentation.BatchSeededCompose`), so a batch is a pure function of
    the stream and does not depend on which worker process produced it.
    """

    def __init__(
        self,
        data_folder: Path | str,
        case_ids: Sequence[str],
        patch_size: Sequence[int],
        n_volumes: int,
        n_slices: int,
        *,
        seed: int = 0,
        fold: int | str = 0,
        rank: int = 0,
        slice_axis: int = 0,
        crop_mode: str = "slice_brain_box",
    ):
        if not case_ids:
            raise ValueError(f"No training case for the data loader in {data_folder}.")
        super().__init__(list(case_ids), n_volumes, num_threads_in_multithreaded=1,
                         seed_for_shuffle=seed, infinite=True)
        self.data_folder = Path(data_folder)
        self.patch_size = tuple(int(p) for p in patch_size)
        self.n_volumes = int(n_volumes)
        self.n_slices = int(n_slices)
        self.slice_axis = int(slice_axis)
        if crop_mode not in CROP_MODES:
            raise ValueError(f"plans.json batch.crop_mode is {crop_mode!r}; choose one of {', '.join(CROP_MODES)}.")
        self.crop_mode = crop_mode
        self.seed_key = (int(seed), fold, int(rank))
        for case_id in case_ids:
            for suffix in (".npy", "_mask.npy"):
                if not (self.data_folder / f"{case_id}{suffix}").is_file():
                    raise FileNotFoundError(
                        f"{self.data_folder / (case_id + suffix)} is missing: run disyre_v2_plan_and_preprocess first."
                    )
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._parent_pid = os.getpid()
        self.set_thread_id(0)

    def set_thread_id(self, thread_id: int) -> None:
        # Called once in each worker process: give every worker its own reproducible stream, and
        # make the worker end with the trainer even when the trainer is killed (kill -9).
        die_with_parent(self._parent_pid)
        if os.getpid() != self._parent_pid:
            # Each worker is one of many processes: torch's CPU kernels in the transforms (the
            # batched spatial augmentation) must not each start one thread per core.
            torch.set_num_threads(1)
        super().set_thread_id(thread_id)
        self.rng = np.random.default_rng(worker_seed_sequence(*self.seed_key, thread_id))

    def _volume(self, case_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Memory-mapped image and mask, and the indices of the slices that hold brain."""
        if case_id not in self._arrays:
            image = _open_array(self.data_folder / f"{case_id}.npy")
            mask = _open_array(self.data_folder / f"{case_id}_mask.npy")
            other_axes = tuple(a for a in range(3) if a != self.slice_axis)
            brain_slices = np.flatnonzero(np.asarray(mask).any(axis=other_axes))
            if brain_slices.size == 0:
                raise ValueError(f"{self.data_folder / (case_id + '_mask.npy')} is empty: no slice holds brain.")
            self._arrays[case_id] = (image, mask, brain_slices)
        return self._arrays[case_id]

    def _slice(self, image: np.ndarray, mask: np.ndarray, index: int) -> tuple[np.ndarray, np.ndarray]:
        take = [slice(None)] * 3
        take[self.slice_axis] = index
        return np.asarray(image[(slice(None), *take)], np.float32), np.asarray(mask[tuple(take)], bool)

    def generate_train_batch(self) -> dict:
        n = len(self._data)
        cases = self.rng.choice(n, self.n_volumes, replace=n < self.n_volumes)
        images, masks, keys = [], [], []
        for case_index in cases:
            case_id = self._data[case_index]
            image, mask, brain_slices = self._volume(case_id)
            chosen = self.rng.choice(brain_slices, self.n_slices, replace=brain_slices.size < self.n_slices)
            for index in chosen:
                slice_image, slice_mask = self._slice(image, mask, int(index))
                window = (window_with_brain(slice_image, slice_mask, self.patch_size, self.rng)
                          if self.crop_mode == "inference_windows" else None)
                if window is None:
                    rows, cols = brain_bounding_box_2d(slice_mask)
                    window = crop_or_pad(slice_image[:, rows, cols], slice_mask[rows, cols], self.patch_size, self.rng)
                patch_image, patch_mask = window
                images.append(patch_image)
                masks.append(patch_mask[None])
                keys.append((case_id, int(index)))
        return {
            "data": np.stack(images),
            "seg": np.stack(masks),
            "seed": int(self.rng.integers(0, 2**31 - 1)),
            "keys": keys,
        }
