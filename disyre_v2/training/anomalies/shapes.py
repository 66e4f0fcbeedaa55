"""Anomaly shapes on the C×C canvas: rectangle, disc, irregular blob slice; optional soft blur.

method_numbers.md ("Anomaly synthesis"): one of three shapes (plans' ``shape_probabilities``), sides / diameter uniform
integers in ``shape_size_range``, rectangles rotated by a uniform angle with
``rectangle_rotation_probability``; the irregular shape is a slice of a library blob whose largest
extent is drawn in ``irregular_extent_range``, rotated by ±``irregular_rotation_deg`` and zoomed by
``irregular_zoom_range``. At P = 128 that gives areas from small foci to the whole canvas, median
about 1,500 px, like the reference's slices of random 3D shapes (shapes are cut by the canvas).
With ``blur_probability`` the mask is blurred with σ ~ U(``blur_sigma_range``) and kept soft.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from disyre_v2.training.anomalies.blob_library import LazyBlobLibrary
from disyre_v2.training.anomalies.config import AnomalySynthesisConfig


def _paste_centred(canvas: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """Write ``shape`` into the middle of ``canvas`` (same convention for every shape)."""
    h, w = shape.shape
    top, left = (canvas.shape[0] - h) // 2, (canvas.shape[1] - w) // 2
    canvas[top:top + h, left:left + w] = shape
    return canvas


def draw_rectangle(canvas_size: int, height: int, width: int) -> np.ndarray:
    """A filled height×width rectangle centred on the canvas (float32 0/1)."""
    canvas = np.zeros((canvas_size, canvas_size), dtype=np.float32)
    return _paste_centred(canvas, np.ones((height, width), dtype=np.float32))


def draw_disc(canvas_size: int, diameter: int) -> np.ndarray:
    """A filled disc spanning exactly ``diameter`` pixels across, centred on the canvas."""
    offsets = np.arange(diameter, dtype=np.float64) - (diameter - 1) / 2.0
    inside = offsets[:, None] ** 2 + offsets[None, :] ** 2 <= (diameter / 2.0) ** 2
    canvas = np.zeros((canvas_size, canvas_size), dtype=np.float32)
    return _paste_centred(canvas, inside.astype(np.float32))


def rotate_shape(mask: np.ndarray, angle_deg: float) -> np.ndarray:
    """A binary shape rotated about the canvas centre (bilinear, thresholded at 0.5)."""
    rotated = ndimage.rotate(mask, angle_deg, reshape=False, order=1, mode="constant", cval=0.0)
    return (rotated >= 0.5).astype(np.float32)


def draw_irregular(canvas_size: int, section: np.ndarray, scale: float, angle_deg: float) -> np.ndarray:
    """Blob section rotated by ``angle_deg`` and scaled by ``scale``, centred on the canvas.

    One affine resampling (bilinear) does rotation and zoom together; thresholding at 0.5 gives a
    binary shape with smooth edges.
    """
    theta = np.deg2rad(angle_deg)
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    # affine_transform maps output coordinates to input coordinates: the inverse transform.
    matrix = rotation.T / scale
    out_centre = np.full(2, (canvas_size - 1) / 2.0)
    in_centre = (np.asarray(section.shape, dtype=np.float64) - 1) / 2.0
    offset = in_centre - matrix @ out_centre
    resampled = ndimage.affine_transform(
        section, matrix, offset=offset, output_shape=(canvas_size, canvas_size), order=1,
        mode="grid-constant", cval=0.0)  # interpolate across the edge: a box of n px zooms to z·n px
    return (resampled >= 0.5).astype(np.float32)


def blur_mask(mask: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur that keeps the mask soft in [0, 1]; zeros outside the canvas (no reflection)."""
    if sigma <= 0:
        return mask
    return np.clip(ndimage.gaussian_filter(mask, sigma=sigma, mode="constant", cval=0.0), 0.0, 1.0)


class ShapeSampler(LazyBlobLibrary):
    """Draws random canvas masks following the plans; owns no RNG (the caller passes one)."""

    def __init__(self, config: AnomalySynthesisConfig, library_seed: int | None = None):
        self.config = config
        self.library_seed = library_seed
        self._library = None

    def library_size(self) -> int:
        return self.config.irregular_library_size

    def draw(self, rng: np.random.Generator, kind: str | None = None) -> tuple[np.ndarray, str]:
        """A binary shape on the canvas and its kind (chosen with the plans' probabilities)."""
        cfg = self.config
        if kind is None:
            kind = cfg.shape_kinds[int(rng.choice(len(cfg.shape_kinds), p=cfg.shape_weights))]
        low, high = cfg.shape_size_range
        if kind == "rectangle":
            height, width = rng.integers(low, high + 1, size=2)
            rectangle = draw_rectangle(cfg.canvas_size, int(height), int(width))
            if cfg.rectangle_rotation_probability and rng.random() < cfg.rectangle_rotation_probability:
                rectangle = rotate_shape(rectangle, rng.uniform(0.0, 180.0))
            return rectangle, kind
        if kind == "disc":
            return draw_disc(cfg.canvas_size, int(rng.integers(low, high + 1))), kind
        if kind == "irregular":
            section, extent = self.library.sample_slice(rng)
            zoom = rng.uniform(*cfg.irregular_zoom_range)
            angle = rng.uniform(-cfg.irregular_rotation_deg, cfg.irregular_rotation_deg)
            target = high / 2.0 if cfg.irregular_extent_range is None else rng.uniform(*cfg.irregular_extent_range)
            scale = zoom * target / extent
            return draw_irregular(cfg.canvas_size, section, scale, angle), kind
        raise ValueError(f"unknown shape kind {kind!r}; expected one of rectangle, disc, irregular")

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """A random shape, blurred with probability ``blur_probability`` (soft mask in [0, 1])."""
        mask, _ = self.draw(rng)
        if rng.random() < self.config.blur_probability:
            mask = blur_mask(mask, rng.uniform(*self.config.blur_sigma_range))
        return mask
