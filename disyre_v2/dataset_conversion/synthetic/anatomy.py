"""The real anatomy behind the synthetic benchmark: the MNI152 2009a template shipped with nilearn.

nilearn bundles the 1 mm ICBM152 2009a symmetric T1 template (skull-stripped, 197x233x189) and its
grey- and white-matter probability maps; they are read from the installed package, never
downloaded. CSF is what remains of the brain: brain mask - GM - WM, clipped at 0. The template is
loaded and resampled once per process and per spacing (``load_template_anatomy`` is cached).
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from disyre_v2.imageio.geometry import Geometry
from disyre_v2.preparation.mni152 import template_paths

logger = logging.getLogger(__name__)

# Box (MNI mm) around the lateral ventricles; the CSF inside it locates them for the atrophy model.
_VENTRICLE_BOX_MNI = {"x": (-30, 30), "y": (-50, 30), "z": (-5, 35)}


@dataclass(frozen=True)
class TemplateAnatomy:
    """Template maps on the output grid of one spacing. Arrays are (Z, Y, X), read-only.

    Positions are in the *grid frame*: millimetres along the array axes, ``index * spacing``.
    """

    spacing: float
    geometry: Geometry
    t1: np.ndarray  # template T1, scaled so that the median of pure white matter is 1
    gm: np.ndarray  # tissue fractions in [0, 1]
    wm: np.ndarray
    csf: np.ndarray
    brain: np.ndarray  # fraction of the voxel inside the template brain mask
    brain_support: np.ndarray  # bool: voxels whose trilinear neighbourhood touches the brain
    tissue_t1: dict  # median scaled T1 of pure "gm", "wm" (= 1) and "csf"
    mni_matrix: np.ndarray  # 3x3: grid-frame (z, y, x) mm -> MNI (x, y, z) RAS mm
    mni_offset: np.ndarray
    brain_box_mm: tuple  # (low, high) corners of the brain in the grid frame
    ventricle_centre_mm: np.ndarray  # grid frame

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.t1.shape

    def to_mni(self, points_mm: np.ndarray) -> np.ndarray:
        """MNI (x, y, z) of grid-frame points given as (3, ...) arrays (float32)."""
        pts = np.asarray(points_mm, np.float32)
        m, b = self.mni_matrix.astype(np.float32), self.mni_offset.astype(np.float32)
        return np.stack([m[i, 0] * pts[0] + m[i, 1] * pts[1] + m[i, 2] * pts[2] + b[i] for i in range(3)])


def _block_mean(array: np.ndarray, factor: int) -> np.ndarray:
    """Mean over factor^3 blocks (zero-padded at the far edges): an exact, alias-free downsampling."""
    if factor == 1:
        return array.astype(np.float32)
    pad = [(0, (-n) % factor) for n in array.shape]
    padded = np.pad(array.astype(np.float32), pad)
    z, y, x = (n // factor for n in padded.shape)
    return padded.reshape(z, factor, y, factor, x, factor).mean(axis=(1, 3, 5), dtype=np.float32)


@functools.lru_cache(maxsize=2)
def load_template_anatomy(spacing: int = 2) -> TemplateAnatomy:
    """Read the template and resample it to ``spacing`` mm (an integer factor of its 1 mm grid)."""
    if int(spacing) != spacing or spacing < 1:
        raise ValueError(f"spacing must be a positive whole number of millimetres (1 or 2), got {spacing}.")
    factor = int(spacing)
    paths = template_paths()
    images = {key: sitk.ReadImage(str(path)) for key, path in paths.items()}
    t1 = sitk.GetArrayFromImage(images["t1"]).astype(np.float32)
    gm = sitk.GetArrayFromImage(images["gm"]).astype(np.float32) / 255.0
    wm = sitk.GetArrayFromImage(images["wm"]).astype(np.float32) / 255.0
    brain = (t1 > 0).astype(np.float32)  # the template is skull-stripped: its support is the brain
    gm *= brain
    wm *= brain
    csf = np.clip(brain - gm - wm, 0.0, 1.0)
    t1 /= np.median(t1[wm > 0.9])
    tissue_t1 = {"wm": 1.0, "gm": float(np.median(t1[gm > 0.9])), "csf": float(np.median(t1[csf > 0.9]))}

    source = Geometry.from_image(images["t1"])
    direction = np.asarray(source.direction).reshape(3, 3)
    origin = np.asarray(source.origin) + direction @ (np.asarray(source.spacing) * (factor - 1) / 2.0)
    maps = {k: _block_mean(v, factor) for k, v in (("t1", t1), ("gm", gm), ("wm", wm), ("csf", csf), ("brain", brain))}
    shape = maps["t1"].shape
    geometry = Geometry(spacing=tuple(s * factor for s in source.spacing), origin=tuple(float(o) for o in origin),
                        direction=source.direction, size=tuple(reversed(shape)))

    # grid frame (z, y, x) mm -> index (x, y, z) * spacing -> LPS -> RAS (flip x and y).
    zyx_to_xyz = np.array([[0, 0, 1], [0, 1, 0], [1, 0, 0]], float)
    lps_to_ras = np.diag([-1.0, -1.0, 1.0])
    mni_matrix = lps_to_ras @ direction @ zyx_to_xyz
    mni_offset = lps_to_ras @ origin

    inside = np.argwhere(maps["brain"] >= 0.5) * float(factor)
    box = (inside.min(0), inside.max(0))
    grid = np.argwhere(maps["csf"] > 0.5).T * float(factor)
    mni = mni_matrix @ grid + mni_offset[:, None]
    b = _VENTRICLE_BOX_MNI
    in_box = ((mni[0] > b["x"][0]) & (mni[0] < b["x"][1]) & (mni[1] > b["y"][0]) & (mni[1] < b["y"][1])
              & (mni[2] > b["z"][0]) & (mni[2] < b["z"][1]))
    ventricle_centre = grid[:, in_box].mean(axis=1)
    maps["brain_support"] = ndimage.binary_dilation(maps["brain"] > 0, iterations=1)
    for array in maps.values():
        array.setflags(write=False)
    logger.debug("Loaded the MNI152 template at %s mm: grid %s.", spacing, shape)
    return TemplateAnatomy(spacing=float(factor), geometry=geometry, tissue_t1=tissue_t1, mni_matrix=mni_matrix,
                           mni_offset=mni_offset, brain_box_mm=box, ventricle_centre_mm=ventricle_centre, **maps)


@functools.lru_cache(maxsize=4)
def template_distance_maps(spacing: int = 2) -> dict[str, np.ndarray]:
    """Distance maps (mm) on the template grid of ``spacing``, for placing lesions and for atrophy.

    "depth": distance from the outside of the brain (0 outside). "csf_distance": distance from the
    nearest CSF-dominated voxel or the outside. Both are computed once at 2 mm and interpolated
    linearly to other spacings: they vary smoothly, and a 1 mm distance transform is slow.
    """
    coarse = load_template_anatomy(2)
    outside = coarse.brain < 0.5
    maps = {
        "depth": ndimage.distance_transform_edt(~outside, sampling=2.0).astype(np.float32),
        "csf_distance": ndimage.distance_transform_edt(~(outside | (coarse.csf >= 0.5)), sampling=2.0).astype(np.float32),
    }
    if int(spacing) != 2:
        fine = load_template_anatomy(spacing)
        f = float(fine.spacing)
        # Voxel i of the fine grid is centred on 1 mm index f*i + (f-1)/2; voxel j of the 2 mm grid on 2j + 1/2.
        axes = [(f * np.arange(n) + (f - 1) / 2 - 0.5) / 2.0 for n in fine.shape]
        coords = np.stack(np.meshgrid(*axes, indexing="ij")).astype(np.float32)
        maps = {k: ndimage.map_coordinates(v, coords, order=1, mode="nearest", prefilter=False) for k, v in maps.items()}
    for array in maps.values():
        array.setflags(write=False)
    return maps
