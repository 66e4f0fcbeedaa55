"""Dataset fingerprint: per-case geometry, intensity statistics, k-Means tissue clusters, errors."""
import json

import numpy as np
import pytest

from disyre_v2.imageio.errors import ImageFormatError
from disyre_v2.imageio.reader import read_case, read_mask
from disyre_v2.imageio.writer import write_image, write_mask
from disyre_v2.planning.fingerprint import extract_fingerprint
from disyre_v2.planning.tissue_clusters import fit_tissue_clusters
from disyre_v2.dataset_conversion.raw_dataset_writer import RawDatasetWriter
from tests.planning_test_data import SHAPE, brain_channels, geometry_for, write_raw_dataset


def test_fit_tissue_clusters_recovers_exact_classes_sorted_with_shares():
    # Five noise-free intensity classes with known counts: k-Means must return them exactly.
    classes = np.array([0.9, 0.1, 0.5, 0.3, 0.7])
    counts = np.array([10, 40, 20, 25, 5])
    values = np.repeat(classes, counts)
    np.random.default_rng(0).shuffle(values)
    result = fit_tissue_clusters(values, num_clusters=5, seed=3)
    assert result["centroids"] == pytest.approx([0.1, 0.3, 0.5, 0.7, 0.9], abs=1e-12)
    assert result["voxel_shares"] == pytest.approx([0.40, 0.25, 0.20, 0.05, 0.10], abs=1e-12)


def test_fit_tissue_clusters_needs_enough_voxels():
    with pytest.raises(ValueError, match="at least as many"):
        fit_tissue_clusters(np.array([0.1, 0.2]), num_clusters=5, channel_name="T1")


def test_fingerprint_per_case_geometry_and_exact_statistics(tmp_path):
    spacing = (0.9, 1.1, 2.0)
    folder = write_raw_dataset(tmp_path, n_train=3, channels=("T1", "T2"), spacing=spacing)
    # A budget above the brain size: the "sample" is every brain voxel, so statistics are exact.
    fingerprint = extract_fingerprint(folder, sample_budget=10**6, progress=False)

    assert fingerprint["case_ids"] == ["case00", "case01", "case02"]
    raw_values = [[], []]
    for entry in fingerprint["cases"]:
        paths = [folder / "imagesTr" / f"{entry['case_id']}_{c:04d}.nii.gz" for c in range(2)]
        data, geometry = read_case(paths)
        mask = read_mask(folder / "masksTr" / f"{entry['case_id']}.nii.gz")
        z, y, x = np.nonzero(mask)
        assert entry["spacing"] == pytest.approx(spacing, rel=1e-6)
        assert entry["shape"] == list(SHAPE)
        assert entry["shape_after_crop"] == [int(np.ptp(a)) + 1 for a in (z, y, x)]
        assert entry["brain_voxels"] == int(mask.sum())
        assert entry["brain_volume_ml"] == pytest.approx(mask.sum() * 0.9 * 1.1 * 2.0 / 1000, rel=1e-6)
        for c in range(2):
            raw_values[c].append(data[c][mask])
            assert entry["normalization_scales"][c] == pytest.approx(np.percentile(data[c][mask], 98), rel=1e-6)
    assert fingerprint["median_spacing"] == pytest.approx(spacing, rel=1e-6)
    for c, key in enumerate(("0", "1")):
        values = np.concatenate(raw_values[c]).astype(np.float64)
        stats = fingerprint["intensity_statistics"][key]
        assert stats["mean"] == pytest.approx(values.mean(), rel=1e-9)
        assert stats["std"] == pytest.approx(values.std(), rel=1e-9)
        assert list(stats["percentiles"]) == ["0.5", "2.0", "50.0", "98.0", "99.5"]
        for q, v in stats["percentiles"].items():
            assert v == pytest.approx(np.percentile(values, float(q)), rel=1e-9)
    assert fingerprint["sampling"]["num_samples"] == sum(c["brain_voxels"] for c in fingerprint["cases"])
    json.dumps(fingerprint)  # plain JSON, no numpy leftovers


def test_tissue_clusters_are_fitted_on_normalised_brain_intensities(tmp_path):
    # Noise-free cases whose brains hold three tissue values: T1 (100, 60, 30) → after division by
    # the 98th percentile (100) the classes are 1.0, 0.6, 0.3; K = 5 centroids must include them.
    folder = write_raw_dataset(tmp_path, n_train=3, channels=("T1",), noise=0.0)
    fingerprint = extract_fingerprint(folder, progress=False)
    clusters = fingerprint["tissue_clusters"]
    assert clusters["num_clusters"] == 5
    assert clusters["normalization"] == {"percentile": 98.0, "domain": "brain", "clip": [0.0, 1.0]}
    centroids = clusters["channels"]["0"]["centroids"]
    assert centroids == sorted(centroids) and len(centroids) == 5
    for value in (0.3, 0.6, 1.0):
        assert min(abs(c - value) for c in centroids) < 1e-6
    assert sum(clusters["channels"]["0"]["voxel_shares"]) == pytest.approx(1.0)


def test_fingerprint_is_seeded_and_independent_of_worker_count(tmp_path):
    folder = write_raw_dataset(tmp_path, n_train=4, channels=("T1", "T2"))
    # A budget below the brain size, so that the voxel sample matters.
    one = extract_fingerprint(folder, num_workers=1, sample_budget=2000, progress=False)
    two = extract_fingerprint(folder, num_workers=2, sample_budget=2000, progress=False)
    assert one["sampling"]["num_samples"] == 2000
    assert json.dumps(one) == json.dumps(two)
    other_seed = extract_fingerprint(folder, num_workers=1, sample_budget=2000, seed=99, progress=False)
    assert other_seed["intensity_statistics"] != one["intensity_statistics"]


def test_fingerprint_derives_the_mask_from_the_channels_when_there_is_none(tmp_path):
    folder = write_raw_dataset(tmp_path, n_train=2, with_masks=False)
    fingerprint = extract_fingerprint(folder, progress=False)
    data, _ = read_case([folder / "imagesTr" / "case00_0000.nii.gz"])
    assert fingerprint["cases"][0]["brain_voxels"] == int((data > 0).any(0).sum())


# --- bad input: each error names the file -----------------------------------------------------

def test_empty_brain_mask_is_refused_naming_the_file(tmp_path):
    folder = write_raw_dataset(tmp_path, n_train=2)
    mask_file = folder / "masksTr" / "case01.nii.gz"
    write_mask(np.zeros(SHAPE, np.uint8), geometry_for(), mask_file)
    with pytest.raises(ImageFormatError, match=f"{mask_file}.*empty brain mask"):
        extract_fingerprint(folder, progress=False)


def test_nan_voxels_are_refused_naming_the_file(tmp_path):
    folder = write_raw_dataset(tmp_path, n_train=2)
    image_file = folder / "imagesTr" / "case00_0000.nii.gz"
    data, geometry = read_case([image_file])
    data[0, 10, 12, 10] = np.nan
    write_image(data[0], geometry, image_file)
    with pytest.raises(ImageFormatError, match=f"{image_file}.*NaN"):
        extract_fingerprint(folder, progress=False)


def test_channel_on_another_grid_is_refused_naming_the_file(tmp_path):
    folder = write_raw_dataset(tmp_path, n_train=2, channels=("T1", "T2"))
    second = folder / "imagesTr" / "case01_0001.nii.gz"
    data, _ = read_case([second])
    write_image(data[0], geometry_for(spacing=(1.0, 1.0, 1.2)), second)
    with pytest.raises(ImageFormatError, match=f"{second} is not on the grid.*spacing"):
        extract_fingerprint(folder, progress=False)


def test_mask_on_another_grid_is_refused_naming_the_file(tmp_path):
    folder = write_raw_dataset(tmp_path, n_train=2)
    mask_file = folder / "masksTr" / "case00.nii.gz"
    mask = read_mask(mask_file)
    write_mask(mask.astype(np.uint8), geometry_for(origin=(0.0, 0.0, 0.0)), mask_file)
    with pytest.raises(ImageFormatError, match=f"{mask_file} is not on the grid.*origin"):
        extract_fingerprint(folder, num_workers=1, progress=False)


def test_dataset_without_training_cases_is_refused(tmp_path):
    with RawDatasetWriter(5, "OnlyTest", ["T1"], raw_base=tmp_path) as writer:
        writer.add_arrays("Ts", "test00", brain_channels(), geometry_for())
    with pytest.raises(ValueError, match="holds no training case"):
        extract_fingerprint(tmp_path / "Dataset005_OnlyTest", progress=False)
