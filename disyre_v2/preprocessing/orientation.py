"""One storage orientation for every case, so that array axis 0 is always the axial (inferior-superior)
axis whatever the voxel order of the input file (IXI stores its T1s sagittally, for example).

SimpleITK's DICOMOrient permutes and flips the voxel axes to the orientation closest to a three-letter
code (ITK's convention: "LPS" means x runs to the Left, y to Posterior, z to Superior). It moves no
voxel value, so the inverse (back to the input's own code) is exact. The code lives in plans.json
(``orientation``); plans without it keep every case as it is stored.
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from disyre_v2.imageio.geometry import Geometry, grid_differences

# The third letter names where array axis 0 (ITK's z) points: superior or inferior = axial slices.
AXIAL_LAST_LETTERS = ("S", "I")


def check_orientation(code: str) -> str:
    """A three-letter code with one letter per physical axis and axial slices on array axis 0."""
    letters = [set(pair) for pair in ("LR", "PA", "SI")]
    if (not isinstance(code, str) or len(code) != 3 or sorted(code) != sorted(set(code))
            or any(sum(c in pair for c in code) != 1 for pair in letters)
            or code[2] not in AXIAL_LAST_LETTERS):
        raise ValueError(
            f"orientation {code!r} in plans.json is not valid: give three letters, one of L/R, one of P/A "
            f"and one of S/I, the last being S or I so that array axis 0 holds axial slices (e.g. 'LPS' or 'RAS').")
    return code


def orientation_of(geometry: Geometry) -> str:
    """The three-letter code closest to a grid's direction cosines."""
    return sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(list(geometry.direction))


def _to_image(array: np.ndarray, geometry: Geometry) -> sitk.Image:
    work = array.astype(np.uint8) if array.dtype == bool else array
    return geometry.apply_to(sitk.GetImageFromArray(work))


def _from_image(image: sitk.Image, dtype) -> np.ndarray:
    array = sitk.GetArrayFromImage(image)
    return array.astype(bool) if dtype == bool else array


def reorient_array(array: np.ndarray, geometry: Geometry, code: str) -> tuple[np.ndarray, Geometry]:
    """A (Z, Y, X) or (C, Z, Y, X) array on ``geometry``, stored in orientation ``code``."""
    if orientation_of(geometry) == code:
        return array, geometry
    if array.ndim == 4:
        channels = [reorient_array(channel, geometry, code) for channel in array]
        return np.stack([c for c, _ in channels]), channels[0][1]
    image = sitk.DICOMOrient(_to_image(array, geometry), code)
    return _from_image(image, array.dtype), Geometry.from_image(image)


def reorient_back(array: np.ndarray, oriented: Geometry, raw: Geometry) -> np.ndarray:
    """The inverse of :func:`reorient_array`: an array on ``oriented`` back onto the grid ``raw``."""
    if array.ndim == 4:
        return np.stack([reorient_back(channel, oriented, raw) for channel in array])
    code = orientation_of(raw)
    if orientation_of(oriented) == code:
        restored, geometry = array, oriented
    else:
        image = sitk.DICOMOrient(_to_image(array, oriented), code)
        restored, geometry = _from_image(image, array.dtype), Geometry.from_image(image)
    differences = grid_differences(geometry, raw)
    if differences:  # cannot happen for a permutation of axes; a guard against a mismatched properties file
        raise ValueError(f"reorienting back did not reproduce the input grid: {'; '.join(differences)}")
    return restored
