"""The scanner and the preprocessing a real dataset went through: gain, bias field, blur, Rician
noise, and a skull-stripping mask that is off by a voxel here and there.

``ACQUISITIONS`` names the ranges these are drawn from: ``default`` (the benchmark's), and
``scanner_b``, a second, differently acquired site (about twice the blur, two to three times the
noise, a stronger bias field) for domain-shift and fine-tuning experiments
(``disyre_v2_make_synthetic_dataset --acquisition scanner_b``). Both draw the same random numbers in
the same order, so ``default`` gives the files it gave before the profiles existed.

Order: signal x gain x bias -> point-spread blur -> Rician magnitude noise -> x brain mask. The image
is exactly 0 outside the mask (as in skull-stripped data) and > 0 inside it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from disyre_v2.dataset_conversion.synthetic.smooth_field import SmoothField, random_smooth_field

GAIN_RANGE = (600.0, 1400.0)  # intensity of white matter, arbitrary scanner units
BIAS_STD_RANGE = (0.03, 0.10)  # std of log(bias): the field varies by roughly +-10-30 %
BIAS_CORRELATION_MM = 60.0
BLUR_SIGMA_VOXELS = (0.3, 0.6)
NOISE_FRACTION_OF_WM = (0.01, 0.04)
MASK_ERROR_CORRELATION_MM = 12.0
MASK_ERROR_THRESHOLD = 1.0  # |field| above this: the mask is one voxel too large (> 0) or too small (< 0)


@dataclass(frozen=True)
class AcquisitionProfile:
    """The ranges one site's acquisitions are drawn from (uniformly, per case and channel)."""

    gain_range: tuple[float, float] = GAIN_RANGE
    bias_std_range: tuple[float, float] = BIAS_STD_RANGE
    blur_sigma_voxels: tuple[float, float] = BLUR_SIGMA_VOXELS
    noise_fraction_of_wm: tuple[float, float] = NOISE_FRACTION_OF_WM


ACQUISITIONS: dict[str, AcquisitionProfile] = {
    "default": AcquisitionProfile(),
    "scanner_b": AcquisitionProfile(gain_range=(1500.0, 3000.0), bias_std_range=(0.12, 0.20),
                                    blur_sigma_voxels=(0.8, 1.1), noise_fraction_of_wm=(0.05, 0.09)),
}


@dataclass(frozen=True)
class Acquisition:
    gains: tuple[float, float]
    bias_std: tuple[float, float]
    blur_sigma_voxels: tuple[float, float]
    noise_fraction: tuple[float, float]
    bias: SmoothField  # 2 components, one per channel
    mask_error: SmoothField


def sample_acquisition(rng: np.random.Generator, extent_mm: np.ndarray,
                       profile: AcquisitionProfile = ACQUISITIONS["default"]) -> Acquisition:
    def pair(low_high):
        return tuple(float(v) for v in rng.uniform(*low_high, 2))

    return Acquisition(
        gains=pair(profile.gain_range), bias_std=pair(profile.bias_std_range),
        blur_sigma_voxels=pair(profile.blur_sigma_voxels), noise_fraction=pair(profile.noise_fraction_of_wm),
        bias=random_smooth_field(rng, np.zeros(3), extent_mm, BIAS_CORRELATION_MM, n_components=2),
        mask_error=random_smooth_field(rng, np.zeros(3), extent_mm, MASK_ERROR_CORRELATION_MM),
    )


def brain_mask_with_errors(brain_fraction: np.ndarray, acquisition: Acquisition, axes_mm: list[np.ndarray]) -> np.ndarray:
    """brain >= 0.5, grown by one voxel where the error field is high and shrunk where it is low."""
    mask = brain_fraction >= 0.5
    error = acquisition.mask_error.on_grid(axes_mm)[0]
    grown = ndimage.binary_dilation(mask)
    shrunk = ndimage.binary_erosion(mask)
    return np.where(error > MASK_ERROR_THRESHOLD, grown, np.where(error < -MASK_ERROR_THRESHOLD, shrunk, mask))


def acquire(images: np.ndarray, mask: np.ndarray, acquisition: Acquisition, axes_mm: list[np.ndarray],
            rng: np.random.Generator) -> np.ndarray:
    """Turn (C, ...) images in WM units into scanner images: float32, 0 outside ``mask``, > 0 inside."""
    bias = acquisition.bias.on_grid(axes_mm)
    inside = np.flatnonzero(mask)
    out = np.zeros(images.shape, np.float32)
    for c in range(images.shape[0]):
        gain = np.float32(acquisition.gains[c])
        signal = images[c] * gain * np.exp(np.float32(acquisition.bias_std[c]) * bias[c])
        signal = ndimage.gaussian_filter(signal, acquisition.blur_sigma_voxels[c], truncate=3.0).ravel()[inside]
        sigma = np.float32(acquisition.noise_fraction[c]) * gain
        real = signal + sigma * rng.standard_normal(inside.size, dtype=np.float32)
        imaginary = sigma * rng.standard_normal(inside.size, dtype=np.float32)
        magnitude = np.sqrt(real * real + imaginary * imaginary)  # Rician: |signal + complex Gaussian|
        out[c].ravel()[inside] = np.maximum(magnitude, np.float32(1e-3))
    return out
