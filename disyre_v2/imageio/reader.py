"""Read NIfTI (or any SimpleITK format) into float32 arrays with their geometry, checking them."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk

from disyre_v2.imageio.errors import ImageFormatError, NonFiniteImageError, first_line, itk_reason
from disyre_v2.imageio.geometry import Geometry, check_same_grid


def _load_3d(path: Path) -> sitk.Image:
    path = Path(path)
    if not path.is_file():
        raise ImageFormatError(f"{path} does not exist.")
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as error:
        raise ImageFormatError(
            f"{path} is not a readable image ({itk_reason(error)}). Check that the file is complete "
            f"and is a NIfTI (.nii or .nii.gz)."
        ) from None
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise ImageFormatError(
            f"{path} has {image.GetNumberOfComponentsPerPixel()} components per voxel; expected a "
            f"scalar 3D image. Save each channel as its own file (CASE_0000, CASE_0001, ...)."
        )
    if image.GetDimension() == 4 and image.GetSize()[3] == 1:
        # A 4D file with a single volume (common from some converters) is a 3D image.
        image = image[:, :, :, 0]
    if image.GetDimension() != 3:
        raise ImageFormatError(
            f"{path} is {image.GetDimension()}D with size {image.GetSize()}; expected a 3D volume. "
            f"Split 4D series into one 3D file per channel."
        )
    return image


def _count_non_finite_nifti(path: Path) -> int:
    """NaN/inf voxels stored in a NIfTI file; also the check that the file is complete.

    ITK's NIfTI reader silently replaces NaN and inf by 0 (nifti_read_buffer) and fills a truncated
    file with zeros, so the stored voxels are read once more with nibabel (installed with nilearn).
    """
    import nibabel

    try:
        image = nibabel.load(str(path))
        raw = np.asanyarray(image.dataobj.get_unscaled())
    except (EOFError, OSError, ValueError, nibabel.filebasedimages.ImageFileError) as error:
        raise ImageFormatError(
            f"{path} is truncated or damaged ({first_line(error)}). Copy or export "
            f"the file again."
        ) from None
    if not np.issubdtype(raw.dtype, np.floating):
        return 0
    return int((~np.isfinite(raw)).sum())


def _check_finite(array: np.ndarray, path: Path | str) -> None:
    bad = int((~np.isfinite(array)).sum()) if np.issubdtype(array.dtype, np.floating) else 0
    if str(path).endswith((".nii", ".nii.gz")):
        bad = max(bad, _count_non_finite_nifti(Path(path)))
    if bad:
        raise NonFiniteImageError(path, bad)


def read_sitk_image(path: Path | str) -> sitk.Image:
    """A checked 3D SimpleITK image in its stored pixel type (for copying files unchanged)."""
    image = _load_3d(Path(path))
    _check_finite(sitk.GetArrayViewFromImage(image), path)
    return image


def read_image(path: Path | str) -> tuple[np.ndarray, Geometry]:
    """A 3D image as a float32 (Z, Y, X) array and its geometry; non-finite values are refused."""
    image = _load_3d(Path(path))
    array = sitk.GetArrayFromImage(image).astype(np.float32, copy=False)
    _check_finite(array, path)
    return array, Geometry.from_image(image)


def read_case(paths: Sequence[Path | str]) -> tuple[np.ndarray, Geometry]:
    """All channels of one case as a float32 (C, Z, Y, X) array; channels must share one grid."""
    if not paths:
        raise ValueError("read_case needs at least one channel file.")
    arrays, geometry = [], None
    for path in paths:
        array, this = read_image(path)
        if geometry is None:
            geometry = this
        else:
            check_same_grid(geometry, this, paths[0], path)
        arrays.append(array)
    return np.stack(arrays), geometry


def read_mask(path: Path | str, reference: Geometry | None = None, reference_path: Path | str = "the image") -> np.ndarray:
    """A brain mask as a bool (Z, Y, X) array (> 0 is brain), optionally checked against a grid."""
    array, geometry = read_image(path)
    if reference is not None:
        check_same_grid(reference, geometry, reference_path, path)
    return array > 0


def read_label(path: Path | str, reference: Geometry | None = None, reference_path: Path | str = "the image") -> np.ndarray:
    """A lesion label map as int16 (Z, Y, X); values must be integers >= 0 (> 0 is anomalous: 7 is a
    lesion class like any other; a negative value is refused rather than silently counted as normal)."""
    array, geometry = read_image(path)
    if reference is not None:
        check_same_grid(reference, geometry, reference_path, path)
    rounded = np.rint(array)
    if not np.array_equal(rounded, array):
        raise ImageFormatError(
            f"{path} has non-integer values (e.g. {array[rounded != array].flat[0]:.4g}); a label map "
            f"holds integer classes. Threshold or round it, or check that it is not an image."
        )
    if rounded.min() < 0:
        raise ImageFormatError(
            f"{path} has negative label values (e.g. {int(rounded.min())}); a label map holds 0 for normal and "
            f"positive classes for lesions (any value > 0 is anomalous). Fix the file, e.g. set the negative "
            f"values to 0 if they mean 'normal'.")
    if rounded.max() > np.iinfo(np.int16).max:
        raise ImageFormatError(f"{path} has label values above the int16 range.")
    return rounded.astype(np.int16)
