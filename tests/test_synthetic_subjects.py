"""Whole synthetic subjects at 2 mm: determinism, tissue contrast, background, masks and labels."""
import numpy as np
import pytest
from scipy import ndimage

from disyre_v2.dataset_conversion.synthetic.generator import CaseSpec, generate_case

FULL = ndimage.generate_binary_structure(3, 3)


@pytest.fixture(scope="module")
def training_case():
    return generate_case(CaseSpec("t", "Tr", 0, "healthy", seed=11, spacing=2), keep_tissues=True)


def test_same_seed_same_subject_and_other_seeds_differ():
    spec = CaseSpec("a", "Ts", 2, "atlas", seed=4, spacing=2)
    first, second = generate_case(spec), generate_case(spec)
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.label, second.label)
    np.testing.assert_array_equal(first.mask, second.mask)
    other = generate_case(CaseSpec("a", "Ts", 2, "atlas", seed=5, spacing=2))
    assert not np.array_equal(first.images, other.images)


def test_tissue_order_and_t2_ratios(training_case):
    t1, t2 = training_case.images
    tissues = training_case.tissues
    inner = ndimage.binary_erosion(training_case.mask > 0, iterations=2)
    median = {name: (np.median(t1[inner & (p >= 0.95)]), np.median(t2[inner & (p >= 0.95)])) for name, p in tissues.items()}
    assert median["wm"][0] > median["gm"][0] > median["csf"][0]  # T1: WM > GM > CSF
    assert median["csf"][1] > median["gm"][1] > median["wm"][1]  # T2: CSF > GM > WM
    assert 1.2 <= median["gm"][1] / median["wm"][1] <= 1.6
    assert 1.9 <= median["csf"][1] / median["wm"][1] <= 3.2


def test_background_is_zero_and_the_mask_is_the_support(training_case):
    mask = training_case.mask > 0
    for channel in training_case.images:
        assert np.all(channel[~mask] == 0.0)
        assert np.all(channel[mask] > 0.0)
    assert training_case.images.dtype == np.float32 and training_case.label is None
    # the mask is the brain (>= half a voxel of GM + WM + CSF), off by one voxel at most
    brain = sum(training_case.tissues.values()) >= 0.5
    assert np.all(mask <= ndimage.binary_dilation(brain, iterations=2))
    assert np.all(mask >= ndimage.binary_erosion(brain, iterations=2))
    assert 0.9 < mask.sum() / brain.sum() < 1.1


@pytest.mark.parametrize("kind, index", [("brats", 0), ("brats", 1), ("atlas", 0), ("atlas", 3), ("subtle", 0), ("subtle", 1)])
def test_labels_are_the_voxels_the_lesion_changed(kind, index):
    spec = CaseSpec("x", "Ts", index, kind, seed=3, spacing=2)
    case, counterpart = generate_case(spec), generate_case(spec, render_lesion=False)
    np.testing.assert_array_equal(case.mask, counterpart.mask)
    label = case.label > 0
    assert label.any() and np.all(label <= (case.mask > 0))
    difference = np.abs(case.images - counterpart.images).max(axis=0)
    # Outside the label, its one-voxel partial-volume edge and the blur's reach, nothing changed at all.
    edge = ndimage.binary_dilation(label, FULL, iterations=3)
    assert np.all(difference[~edge] == 0.0)
    # Inside the label (away from its edge), every voxel changed.
    scale = np.median(counterpart.images[0][case.mask > 0])
    interior = ndimage.binary_erosion(label)
    assert np.all(difference[interior] > 0.002 * scale)
    t1_ratio = case.images[0][label].mean() / counterpart.images[0][label].mean()
    t2_ratio = case.images[1][label].mean() / counterpart.images[1][label].mean()
    assert t2_ratio > 1.05  # T2-hyperintense
    assert t1_ratio < 0.97  # T1-hypointense


def test_lesion_kinds_have_their_labels_and_sizes():
    brats = generate_case(CaseSpec("b", "Ts", 0, "brats", seed=3, spacing=2))
    assert set(np.unique(brats.label)) <= {0, 1, 2, 4} and 2 in brats.label
    assert brats.info["lesion"]["volumes_ml"]["edema"] > 0
    atlas = generate_case(CaseSpec("a", "Ts", 0, "atlas", seed=3, spacing=2))
    assert set(np.unique(atlas.label)) == {0, 1}
    assert 0.1 <= atlas.info["label_volume_ml"] <= 200
    subtle = generate_case(CaseSpec("s", "Ts", 0, "subtle", seed=3, spacing=2))
    assert 0 < subtle.info["label_volume_ml"] < 20
    healthy = generate_case(CaseSpec("h", "Ts", 4, "healthy", seed=3, spacing=2))
    assert healthy.label is not None and not healthy.label.any()


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="Unknown lesion kind 'flair'"):
        generate_case(CaseSpec("x", "Ts", 0, "flair", seed=0))
