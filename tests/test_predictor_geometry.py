"""What reaches the user's grid: masking with the input's own brain, axial slices whatever the storage
orientation, and scoring at the plans' spacing whatever the case's spacing (issue 11, items 1, 2, 7)."""
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch
from scipy import ndimage

from disyre_v2.imageio.geometry import Geometry
from disyre_v2.inference.model_loading import LoadedModel
from disyre_v2.inference.predict_folder import predict_folder
from disyre_v2.inference.predictor import DisyrePredictor
from disyre_v2.preprocessing.resampling import resample_array
from tests.test_predictor import plans_for


class ConstantResidual(torch.nn.Module):
    """P(x, t) = x + c: every window's residual is c everywhere."""

    def __init__(self, value: float):
        super().__init__()
        self.value = value

    def forward(self, x, t=None):
        return x + self.value


class LocalMean(torch.nn.Module):
    """A fixed, content-dependent 'restoration': the 3x3 local mean (residual large at edges and detail)."""

    def forward(self, x, t=None):
        return torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


def predictor(network, orientation=None, resample=True, spacing=(2.0, 2.0, 2.0)) -> DisyrePredictor:
    plans = plans_for(1, resample=resample, spacing=spacing)
    if orientation is not None:
        plans["configurations"]["2d_small"]["orientation"] = orientation
    return DisyrePredictor(plans, "2d_small", [LoadedModel(network, True, Path("model"))])


def ellipsoid(shape_zyx, spacing_zyx, semi_axes_mm) -> np.ndarray:
    grids = np.meshgrid(*[(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape_zyx, spacing_zyx)], indexing="ij")
    return sum((g / a) ** 2 for g, a in zip(grids, semi_axes_mm)) <= 1.0


def smooth_head(shape_zyx, spacing_zyx, seed=0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random 'brain' image (values 40-100 inside an ellipsoid, 0 outside) and its mask."""
    brain = ellipsoid(shape_zyx, spacing_zyx, (24.0, 62.0, 58.0))
    rng = np.random.default_rng(seed)
    texture = ndimage.gaussian_filter(rng.random(shape_zyx), sigma=[4.0 / s for s in spacing_zyx])
    texture = (texture - texture.min()) / (texture.max() - texture.min())
    return ((40 + 60 * texture) * brain).astype(np.float32), brain


def write(path: Path, array: np.ndarray, spacing_xyz, origin=(3.0, -5.0, 8.0), direction=(1, 0, 0, 0, 1, 0, 0, 0, 1)):
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing_xyz)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return path


@pytest.mark.parametrize("spacing_mm", [1.0, 2.0])
def test_every_input_brain_voxel_is_scored_and_nothing_else(tmp_path, spacing_mm):
    # A 1 mm case through 2 mm plans (resampled there and back) and a 2 mm case (native path).
    spacing_zyx = (spacing_mm,) * 3
    shape = tuple(int(round(n / spacing_mm)) for n in (60, 130, 120))
    image, brain = smooth_head(shape, spacing_zyx)
    brain_path = write(tmp_path / "m.nii.gz", brain.astype(np.uint8), (spacing_mm,) * 3)
    image_path = write(tmp_path / "c_0000.nii.gz", image, (spacing_mm,) * 3)
    c = 0.05
    anomaly_map, _, properties = predictor(ConstantResidual(c)).predict_case([image_path], brain_path)
    assert properties["resampled"] is (spacing_mm == 1.0)
    assert anomaly_map.shape == brain.shape
    assert (anomaly_map[brain] > 0).all()  # every input brain voxel: cortical lesions sit at the edge
    assert (anomaly_map[~brain] == 0).all()  # background exactly 0
    assert np.array_equal(properties["raw_mask"], brain)
    # Where every window (32 mm wide, in-plane) covering a voxel is full of brain, f = 1: the map is c.
    deep = np.stack([ndimage.distance_transform_edt(s, sampling=spacing_zyx[1:]) > 46.0 for s in brain])
    assert deep.sum() > 50
    np.testing.assert_allclose(anomaly_map[deep], c, atol=1e-5)


def test_the_same_head_stored_in_three_orientations_gives_the_same_map(tmp_path):
    image, brain = smooth_head((30, 64, 60), (2.0, 2.0, 2.0), seed=2)
    reference = write(tmp_path / "lps.nii.gz", image, (2.0, 2.0, 2.0))
    lps = sitk.ReadImage(str(reference))
    stored = {"LPS": lps, "RAS": sitk.DICOMOrient(lps, "RAS"), "sagittal": sitk.DICOMOrient(lps, "ASL")}
    maps = {}
    for name, image_in in stored.items():
        folder = tmp_path / name
        folder.mkdir()
        sitk.WriteImage(image_in, str(folder / f"{name}_0000.nii.gz"))
        predict_folder(predictor(LocalMean(), orientation="LPS"), folder, tmp_path / f"maps_{name}")
        map_path = tmp_path / f"maps_{name}" / f"{name}.nii.gz"
        # Each map lies on its own input's grid (checked with another reader than ours).
        np.testing.assert_allclose(nib.load(map_path).affine, nib.load(folder / f"{name}_0000.nii.gz").affine,
                                   atol=1e-5)
        maps[name] = sitk.GetArrayFromImage(sitk.DICOMOrient(sitk.ReadImage(str(map_path)), "LPS"))
    assert stored["sagittal"].GetSize() != lps.GetSize()  # really another voxel order
    assert maps["LPS"].max() > 0
    np.testing.assert_allclose(maps["RAS"], maps["LPS"], atol=1e-6)
    np.testing.assert_allclose(maps["sagittal"], maps["LPS"], atol=1e-6)


def test_a_case_at_another_spacing_is_scored_at_the_plans_spacing(tmp_path):
    # Training data all at 2 mm (resample: false); the same head stored at 1 mm and at 2 mm.
    fine, fine_brain = smooth_head((60, 128, 120), (1.0, 1.0, 1.0), seed=3)
    fine_geometry = Geometry((1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1), (120, 128, 60))
    coarse_geometry = Geometry((2.0, 2.0, 2.0), (0.5, 0.5, 0.5), (1, 0, 0, 0, 1, 0, 0, 0, 1), (60, 64, 30))
    coarse = resample_array(fine, fine_geometry, coarse_geometry, "linear")
    coarse_brain = resample_array(fine_brain, fine_geometry, coarse_geometry, "nearest")
    model = predictor(LocalMean(), resample=False)
    map_fine, _, props = model.predict_array(fine, fine_geometry, fine_brain)
    map_coarse, _, _ = model.predict_array(coarse * coarse_brain, coarse_geometry, coarse_brain)
    assert props["resampled"] is True
    upsampled = resample_array(map_coarse, coarse_geometry, fine_geometry, "linear")
    inside = ndimage.binary_erosion(fine_brain, iterations=3)
    correlation = np.corrcoef(map_fine[inside], upsampled[inside])[0, 1]
    assert correlation >= 0.95
    assert np.median(np.abs(map_fine[inside] - upsampled[inside])) <= 0.2 * np.median(upsampled[inside])
    # And the masking of the input grid holds on that path.
    assert (map_fine[fine_brain] > 0).all() and (map_fine[~fine_brain] == 0).all()


def unweighted_predictor(network, spacing=(2.0, 2.0, 2.0)) -> DisyrePredictor:
    """No brain-fraction weighting (and no median filter): a constant residual c is c on every brain voxel
    of the preprocessed grid, so whatever the export does at the brain's edge shows."""
    plans = plans_for(1, spacing=spacing)
    plans["configurations"]["2d_small"]["inference"]["foreground_weighting"] = False
    return DisyrePredictor(plans, "2d_small", [LoadedModel(network, True, Path("model"))])


def test_resampled_maps_keep_their_edge_values_on_the_input_grid(tmp_path):
    # A 1 mm case through 2 mm plans: the map is c on every preprocessed brain voxel, and every input
    # brain voxel must get c back. Without the extension past the brain's edge (extend_beyond_mask)
    # linear interpolation mixes in the zero background and edge scores drop by up to a half.
    spacing_zyx = (1.0, 1.0, 1.0)
    brain = ellipsoid((36, 60, 56), spacing_zyx, (15.0, 26.0, 24.0))
    image = (brain * 80.0).astype(np.float32)
    c = 0.05
    anomaly_map, _, properties = unweighted_predictor(ConstantResidual(c)).predict_array(
        image, Geometry((1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1), (56, 60, 36)), brain)
    assert properties["resampled"] is True
    assert (anomaly_map[~brain] == 0).all()
    np.testing.assert_allclose(anomaly_map[brain], c, rtol=1e-4)


def test_native_space_maps_are_extended_past_the_brain_like_the_input_grid_maps(tmp_path):
    # The case on a 2 mm "template" grid, its native scan at 1.5 mm, rotated and shifted. The map is c
    # on every brain voxel of the template grid (and of the input grid), so it must be c on every brain
    # voxel of the native grid too: not diluted by the background at the brain's edge.
    shape = (30, 50, 46)
    brain = ellipsoid(shape, (2.0, 2.0, 2.0), (22.0, 40.0, 36.0))
    write(tmp_path / "in" / "p1_0000.nii.gz", (brain * 70.0).astype(np.float32), (2.0, 2.0, 2.0), origin=(0, 0, 0))
    centre = (45.0, 49.0, 29.0)  # x, y, z mm
    transform = sitk.Euler3DTransform(centre, 0.1, -0.05, 0.2, (3.3, -2.1, 1.7))  # template -> native point
    preparation = tmp_path / "prepared" / "preparation"
    preparation.mkdir(parents=True)
    sitk.WriteTransform(transform, str(preparation / "p1.tfm"))
    native_grid = Geometry((1.5, 1.5, 1.5), (-12.0, -12.0, -12.0), (1, 0, 0, 0, 1, 0, 0, 0, 1), (80, 88, 56))
    (preparation / "p1.json").write_text(json.dumps({"native_grid": native_grid.to_dict(), "transform": "p1.tfm"}))
    c = 0.05
    predict_folder(unweighted_predictor(ConstantResidual(c)), tmp_path / "in", tmp_path / "maps",
                   native_space=tmp_path / "prepared")
    on_input = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "maps" / "p1.nii.gz")))
    np.testing.assert_allclose(on_input[brain], c, rtol=1e-4)
    native = sitk.ReadImage(str(tmp_path / "maps" / "native" / "p1.nii.gz"))
    assert Geometry.from_image(native) == native_grid
    scores = sitk.GetArrayFromImage(native)
    scored = scores > 0
    # The brain carried to the native grid (nearest neighbour): about as many voxels as its volume.
    assert abs(scored.sum() * 1.5 ** 3 - brain.sum() * 2.0 ** 3) <= 0.05 * brain.sum() * 2.0 ** 3
    np.testing.assert_allclose(scores[scored], c, rtol=1e-4)  # edge voxels included
