"""Resampling in physical space and the inverse map back to the raw grid (oblique, anisotropic)."""
import re

import numpy as np
import pytest
from scipy.ndimage import distance_transform_edt

from disyre_v2.imageio.geometry import Geometry
from disyre_v2.planning.defaults import NORMALIZATION
from disyre_v2.preprocessing.inverse import raw_geometry, restore_to_raw
from disyre_v2.preprocessing.normalization import apply_normalization, normalization_scales
from disyre_v2.preprocessing.preprocessor import preprocess_arrays
from disyre_v2.preprocessing.resampling import resample_array, resampled_geometry
from tests.nifti_factory import OBLIQUE_DIRECTION
from tests.planning_test_data import geometry_for

SHAPE = (14, 30, 26)
SPACING = (0.9, 1.1, 2.0)  # x, y, z: anisotropic
GEOMETRY = geometry_for(SHAPE, SPACING, OBLIQUE_DIRECTION, origin=(-12.0, 7.5, 3.0))


def physical_points(geometry: Geometry) -> np.ndarray:
    """(Z, Y, X, 3) physical coordinates of the voxel centres of a grid."""
    z, y, x = np.meshgrid(*[np.arange(n) for n in geometry.shape_zyx], indexing="ij")
    index = np.stack([x, y, z], axis=-1).astype(np.float64)
    direction = np.asarray(geometry.direction).reshape(3, 3)
    return np.asarray(geometry.origin) + (index * np.asarray(geometry.spacing)) @ direction.T


def ramp(points: np.ndarray) -> np.ndarray:
    """A linear function of physical position: any resampling must reproduce it."""
    return (40.0 + 0.6 * points[..., 0] - 0.4 * points[..., 1] + 0.9 * points[..., 2]).astype(np.float32)


def ellipsoid_mask(shape) -> np.ndarray:
    grids = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    return sum(g ** 2 for g in grids) < 0.8


def config(spacing, resample=True) -> dict:
    return {"data_identifier": "test", "spacing": list(spacing), "resample": resample, "normalization": dict(NORMALIZATION)}


def interior(shape, margin):
    return tuple(slice(margin, n - margin) for n in shape)


def test_resampled_grid_covers_the_same_extent():
    target = resampled_geometry(GEOMETRY, (2.0, 2.0, 2.0))
    assert target.size == (12, 17, 14)  # 26*0.9/2 = 11.7, 30*1.1/2 = 16.5 (half up), 14*2/2
    # The first voxel corner stays where it was: origin - D s/2 == origin' - D s'/2.
    direction = np.asarray(GEOMETRY.direction).reshape(3, 3)
    corner = np.asarray(GEOMETRY.origin) - direction @ (np.asarray(GEOMETRY.spacing) / 2)
    corner_new = np.asarray(target.origin) - direction @ (np.asarray(target.spacing) / 2)
    assert corner_new == pytest.approx(corner, abs=1e-9)
    assert target.direction == GEOMETRY.direction


def test_resampling_is_done_in_physical_space_with_an_oblique_direction():
    values = ramp(physical_points(GEOMETRY))
    target = resampled_geometry(GEOMETRY, (2.0, 2.0, 2.0))
    down = resample_array(values, GEOMETRY, target, "cubic")
    expected = ramp(physical_points(target))
    core = interior(target.shape_zyx, 2)
    # The ramp rises ~1 per mm: a grid misplaced by even 0.01 mm would show; B-spline border
    # effects and float32 stay far below that.
    assert np.abs(down[core] - expected[core]).max() < 0.01
    back = resample_array(down, target, GEOMETRY, "linear")
    core = interior(GEOMETRY.shape_zyx, 4)
    assert np.abs(back[core] - values[core]).max() < 0.01


def test_round_trip_without_resampling_is_an_exact_identity():
    rng = np.random.default_rng(0)
    mask = ellipsoid_mask(SHAPE)
    data = (rng.uniform(10, 100, size=(2,) + SHAPE) * mask).astype(np.float32)
    # The case is already on the plans' spacing: nothing is resampled.
    pre, pre_mask, props = preprocess_arrays(data, mask, GEOMETRY, config(SPACING))
    assert props["resampled"] is False
    assert pre.shape == (2,) + tuple(props["shape_cropped"]) and pre.dtype == np.float32
    normalised = apply_normalization(data, mask, normalization_scales(data, mask, NORMALIZATION), [0.0, 1.0])
    assert np.array_equal(restore_to_raw(pre, props), normalised)
    assert np.array_equal(restore_to_raw(pre_mask, props, interpolation="nearest"), mask)
    assert raw_geometry(props) == GEOMETRY
    # A case at another spacing is always brought to the plans' spacing, whatever "resample" says
    # (it records whether the training cases needed it): a model scores slices at its own spacing.
    _, _, props_off = preprocess_arrays(data, mask, GEOMETRY, config((2.0, 2.0, 2.0), resample=False))
    assert props_off["resampled"] is True and props_off["shape_preprocessed"] != props["shape_cropped"]


def test_round_trip_with_resampling_is_exact_up_to_interpolation():
    mask = ellipsoid_mask(SHAPE)
    values = ramp(physical_points(GEOMETRY))
    data = (values * mask)[None]
    pre, pre_mask, props = preprocess_arrays(data, mask, GEOMETRY, config((2.0, 2.0, 2.0)))
    assert props["resampled"] is True
    assert Geometry.from_dict(props["preprocessed_geometry"]).spacing == (2.0, 2.0, 2.0)
    assert tuple(props["shape_preprocessed"]) == pre.shape[1:] == pre_mask.shape
    assert pre.min() >= 0.0 and pre.max() <= 1.0 and (pre[0][~pre_mask] == 0).all()

    restored = restore_to_raw(pre, props)
    assert restored.shape == (1,) + SHAPE and restored.dtype == np.float32
    assert raw_geometry(props) == GEOMETRY
    scale = props["normalization"]["scales"][0]
    expected = np.clip(values / scale, 0, 1)
    # Away from the brain border (cubic and linear kernels reach 2 voxels of 2 mm into the zero
    # background) the ramp comes back.
    deep = distance_transform_edt(mask, sampling=SPACING[::-1]) > 6.0
    assert deep.sum() > 200
    assert np.abs(restored[0][deep] - expected[deep]).max() < 0.01
    (z0, z1), (y0, y1), (x0, x1) = props["crop_box"]
    outside = np.ones(SHAPE, bool)
    outside[z0:z1, y0:y1, x0:x1] = False
    assert (restored[0][outside] == 0).all()
    restored_mask = restore_to_raw(pre_mask, props, interpolation="nearest")
    dice = 2 * (restored_mask & mask).sum() / (restored_mask.sum() + mask.sum())
    assert restored_mask.dtype == bool and dice > 0.9


def test_restore_refuses_arrays_not_on_the_preprocessed_grid():
    mask = ellipsoid_mask(SHAPE)
    pre, _, props = preprocess_arrays(ramp(physical_points(GEOMETRY))[None] * mask, mask, GEOMETRY,
                                      config((2.0, 2.0, 2.0)))
    assert restore_to_raw(np.stack([pre[0], pre[0]]), props).shape == (2,) + SHAPE
    with pytest.raises(ValueError, match=re.escape(f"the preprocessed grid is {tuple(pre.shape[1:])}")):
        restore_to_raw(np.zeros((12, 13, 12), np.float32), props)


@pytest.mark.parametrize("direction", [OBLIQUE_DIRECTION, (-1.0, 0, 0, 0, -1.0, 0, 0, 0, 1.0),
                                       # sagittal storage: array x along physical y, y along -z, z along -x
                                       (0.0, 0.0, -1.0, 1.0, 0.0, 0.0, 0.0, -1.0, 0.0)])
def test_reoriented_round_trip_is_exact_and_slices_are_axial(direction):
    geometry = geometry_for(SHAPE, SPACING, direction, origin=(-12.0, 7.5, 3.0))
    rng = np.random.default_rng(1)
    mask = ellipsoid_mask(SHAPE)
    data = (rng.uniform(10, 100, size=(1,) + SHAPE) * mask).astype(np.float32)
    settings = dict(config(SPACING), orientation="LPS")
    settings["spacing"] = None  # filled below: the spacing of the reoriented grid
    from disyre_v2.preprocessing.orientation import reorient_array

    _, oriented = reorient_array(data[0], geometry, "LPS")
    settings["spacing"] = list(oriented.spacing)
    pre, pre_mask, props = preprocess_arrays(data, mask, geometry, settings)
    assert props["resampled"] is False and props["orientation"] == "LPS"
    # Axis 0 of the preprocessed arrays runs along the physical inferior-superior axis.
    oriented_direction = np.asarray(props["oriented_geometry"]["direction"]).reshape(3, 3)
    assert abs(oriented_direction[2, 2]) == pytest.approx(max(abs(oriented_direction[:, 2])))
    assert oriented_direction[2, 2] > 0
    normalised = apply_normalization(data, mask, normalization_scales(data, mask, NORMALIZATION), [0.0, 1.0])
    assert np.array_equal(restore_to_raw(pre, props), normalised)
    assert np.array_equal(restore_to_raw(pre_mask, props, interpolation="nearest"), mask)
