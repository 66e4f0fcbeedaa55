"""CutPaste and CutPaste-Scar (Li et al., CVPR 2021, Sec. 3.1 and Fig. 2), the self-supervision of
CutPasteTrainer, as a seeded batch transform on numpy arrays.

Each training slice gives one random ``crop`` × ``crop`` crop (UPD's localisation variant trains on
32 × 32 crops of its 128-pixel slices, a quarter of the side; our crop is a quarter of the patch) and
three views of it, the paper's 3-way task: class 0 the crop as it is, class 1 CutPaste (a rectangle
of 2–15 % of the crop's area, aspect ratio from U(0.3, 1) or U(1, 3.3) with equal chance, cut at a
uniform place and pasted at another), class 2 CutPaste-Scar (a thin rectangle, width 1–8 and length
5–13 pixels at a 32-pixel crop, scaled to ours, rotated by U(−45°, 45°), pasted through its rotated
footprint). The cut piece is colour-jittered as the paper's code (torchvision ColorJitter 0.1): its
brightness and contrast scaled by U(0.9, 1.1) each (saturation and hue do nothing to grey values);
the values are clipped to [0, 1] as 8-bit images are. Every draw comes from the transform's own
Generator, which the loader reseeds per batch, so a batch is the same whichever process makes it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from batchgenerators.transforms.abstract_transforms import AbstractTransform
from scipy import ndimage

from disyre_v2.training.seeded import SeededRandomness

# The paper's and UPD's ranges (LilitYolyan/CutPaste, used by UPD): fractions of the crop's area and side ratios.
AREA_RATIO = (0.02, 0.15)
ASPECT_RATIO = ((0.3, 1.0), (1.0, 3.3))
# Scar sizes in pixels at UPD's 32-pixel crop (width 1–8, length 5–13, integers inclusive); scaled to the crop.
SCAR_REFERENCE_CROP = 32
SCAR_WIDTH = (1, 8)
SCAR_LENGTH = (5, 13)
SCAR_ROTATION = (-45.0, 45.0)
JITTER = 0.1  # ColorJitter(brightness=0.1, contrast=0.1): factors from U(0.9, 1.1)

CLASSES = ("normal", "cutpaste", "scar")


@dataclass(frozen=True)
class Paste:
    """Where a piece was cut (top, left), its size before rotation, where its (rotated) footprint was
    pasted (top, left) and the footprint's size."""

    source: tuple[int, int]
    size: tuple[int, int]
    target: tuple[int, int]
    footprint: tuple[int, int]
    angle: float = 0.0


def scaled_scar_sizes(crop: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """(width range, length range) in pixels of a ``crop``-pixel crop: UPD's at 32 pixels, scaled, ≥ 1."""
    scale = crop / SCAR_REFERENCE_CROP

    def scale_range(bounds: tuple[int, int]) -> tuple[int, int]:
        low, high = (max(1, min(crop, math.floor(b * scale + 0.5))) for b in bounds)
        return low, max(low, high)

    return scale_range(SCAR_WIDTH), scale_range(SCAR_LENGTH)


def color_jitter(piece: np.ndarray, rng: np.random.Generator, strength: float = JITTER) -> np.ndarray:
    """Brightness x·b, then contrast m + c·(x − m) with m the piece's mean (PIL's ImageEnhance), b and c from
    U(1 − s, 1 + s); clipped to [0, 1]. ``strength`` 0 leaves the piece as it is."""
    if strength <= 0:
        return piece
    brightness, contrast = rng.uniform(1 - strength, 1 + strength, size=2)
    piece = piece * brightness
    mean = piece.mean()
    return np.clip(mean + contrast * (piece - mean), 0.0, 1.0).astype(np.float32)


def _paste(image: np.ndarray, piece: np.ndarray, footprint: np.ndarray, rng: np.random.Generator,
           source: tuple[int, int], size: tuple[int, int], angle: float) -> tuple[np.ndarray, Paste]:
    """``piece`` (C, h, w) pasted where ``footprint`` (h, w) is true, at a uniform place inside the image."""
    height, width = image.shape[-2:]
    h, w = footprint.shape
    top, left = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
    out = image.copy()
    region = out[:, top:top + h, left:left + w]
    region[:, footprint] = piece[:, footprint]
    return out, Paste(source, size, (top, left), (h, w), angle)


def cut_paste(image: np.ndarray, rng: np.random.Generator, jitter: float = JITTER,
              area_ratio: tuple[float, float] = AREA_RATIO,
              aspect_ratio: tuple[tuple[float, float], ...] = ASPECT_RATIO) -> tuple[np.ndarray, Paste]:
    """CutPaste of one (C, H, W) image: a rectangle of area U(area_ratio)·H·W and aspect ratio r (w/h) drawn
    from one of the two ranges with equal chance, w = ⌊√(A·r)⌋, h = ⌊√(A/r)⌋ (as the reference code), cut at a
    uniform place, jittered and pasted at another uniform place."""
    height, width = image.shape[-2:]
    area = rng.uniform(*area_ratio) * height * width
    ranges = [rng.uniform(*bounds) for bounds in aspect_ratio]
    aspect = ranges[int(rng.integers(len(ranges)))]
    w = int(min(max(int(math.sqrt(area * aspect)), 1), width))
    h = int(min(max(int(math.sqrt(area / aspect)), 1), height))
    top, left = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
    piece = color_jitter(image[:, top:top + h, left:left + w], rng, jitter)
    return _paste(image, piece, np.ones((h, w), bool), rng, (top, left), (h, w), 0.0)


def cut_paste_scar(image: np.ndarray, rng: np.random.Generator, jitter: float = JITTER,
                   width_range: tuple[int, int] | None = None, length_range: tuple[int, int] | None = None,
                   rotation: tuple[float, float] = SCAR_ROTATION) -> tuple[np.ndarray, Paste]:
    """CutPaste-Scar of one (C, H, W) image: a w × l rectangle (w, l uniform integers in the ranges; default
    UPD's, scaled to the image's side) cut at a uniform place, jittered, rotated by U(rotation) degrees
    (nearest neighbour, the footprint grows to hold it, as PIL's rotate(expand=True)) and pasted through its
    rotated footprint at a uniform place."""
    height, width = image.shape[-2:]
    default_width, default_length = scaled_scar_sizes(min(height, width))
    width_range, length_range = width_range or default_width, length_range or default_length
    w = min(int(rng.integers(width_range[0], width_range[1] + 1)), width)
    h = min(int(rng.integers(length_range[0], length_range[1] + 1)), height)
    top, left = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
    piece = color_jitter(image[:, top:top + h, left:left + w], rng, jitter)
    angle = float(rng.uniform(*rotation))
    footprint = np.ones((h, w), np.float32)
    if angle != 0.0:
        piece = ndimage.rotate(piece, angle, axes=(1, 2), reshape=True, order=0, mode="constant", cval=0.0)
        footprint = ndimage.rotate(footprint, angle, reshape=True, order=0, mode="constant", cval=0.0)
    # A footprint grown past the image (a long scar at 45° in a small crop) keeps its centre.
    crop_h, crop_w = max(footprint.shape[0] - height, 0), max(footprint.shape[1] - width, 0)
    rows = slice(crop_h // 2, crop_h // 2 + min(footprint.shape[0], height))
    cols = slice(crop_w // 2, crop_w // 2 + min(footprint.shape[1], width))
    return _paste(image, piece[:, rows, cols], footprint[rows, cols] > 0.5, rng, (top, left), (h, w), angle)


def random_crop(data: np.ndarray, mask: np.ndarray, size: int, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray]:
    """A ``size`` × ``size`` crop of (C, H, W) data and its (1, H, W) mask whose centre pixel is brain where
    the slice has brain (else uniform): UPD crops anywhere, also in the background, where all three views
    are equal and the task has no answer."""
    height, width = data.shape[-2:]
    brain = np.argwhere(mask[0, size // 2:height - (size - 1) // 2, size // 2:width - (size - 1) // 2] > 0)
    if len(brain):
        top, left = (int(v) for v in brain[int(rng.integers(len(brain)))])
    else:
        top, left = int(rng.integers(0, height - size + 1)), int(rng.integers(0, width - size + 1))
    return data[:, top:top + size, left:left + size], mask[:, top:top + size, left:left + size]


class CutPasteTransform(SeededRandomness, AbstractTransform):
    """Batch transform: ``data`` (B, C, P, P) → ``data`` (3B, C, S, S): B crops, their CutPaste views,
    their CutPaste-Scar views; ``target`` the class (0, 1, 2) of each, int64; ``mask`` the crops' brain
    masks; ``t`` = 0 (no level input)."""

    def __init__(self, crop: int, jitter: float = JITTER, seed: int | None = None):
        if crop < 2:
            raise ValueError(f"CutPaste needs crops of at least 2 pixels, got {crop}")
        self.crop, self.jitter = int(crop), float(jitter)
        self.reseed(seed)

    def __call__(self, **data_dict):
        data = np.asarray(data_dict["data"], np.float32)
        masks = np.asarray(data_dict["mask"])
        if min(data.shape[-2:]) < self.crop:
            raise ValueError(f"CutPaste crops of {self.crop} pixels do not fit patches of {data.shape[-2:]}")
        crops, crop_masks = zip(*(random_crop(image, mask, self.crop, self.rng) for image, mask in zip(data, masks)))
        views = [list(crops), [cut_paste(c, self.rng, self.jitter)[0] for c in crops],
                 [cut_paste_scar(c, self.rng, self.jitter)[0] for c in crops]]
        data_dict["data"] = np.ascontiguousarray(np.concatenate([np.stack(v) for v in views]), np.float32)
        data_dict["mask"] = np.ascontiguousarray(np.concatenate([np.stack(crop_masks)] * len(views)))
        data_dict["target"] = np.repeat(np.arange(len(views), dtype=np.int64), len(crops))
        data_dict["t"] = np.zeros(len(data_dict["target"]), np.int64)
        return data_dict

    def __repr__(self) -> str:
        return f"{type(self).__name__}(crop={self.crop}, jitter={self.jitter})"
