"""Building blocks of the synthetic benchmark, checked on tiny arrays with exact expected values."""
import numpy as np
import pytest

from disyre_v2.dataset_conversion.synthetic import anatomy
from disyre_v2.dataset_conversion.synthetic.acquisition import Acquisition, acquire, brain_mask_with_errors
from disyre_v2.dataset_conversion.synthetic.builder import plan_cases
from disyre_v2.dataset_conversion.synthetic.contrast import SubjectContrast, lesion_change, render_healthy
from disyre_v2.dataset_conversion.synthetic.deformation import RadialExpansion, SubjectDeformation, sample_deformation
from disyre_v2.dataset_conversion.synthetic.lesions import Appearance, Compartment, Lesion, finalise, partial_volume
from disyre_v2.dataset_conversion.synthetic.shapes import IrregularEllipsoid, fit_scale, outline_noise, signed_distance
from disyre_v2.dataset_conversion.synthetic.smooth_field import SmoothField, random_smooth_field
from disyre_v2.preparation import mni152


def test_smooth_field_is_a_sum_of_gaussian_bumps():
    coefficients = np.zeros((1, 3, 3, 3))
    coefficients[0, 1, 1, 1] = 2.0
    field = SmoothField(coefficients, first_point_mm=np.zeros(3), step_mm=10.0)
    axes = [np.array([10.0, 20.0]), np.array([10.0]), np.array([0.0, 10.0])]
    values = field.on_grid(axes)[0]
    expected = 2.0 * np.exp(-0.5 * np.array([[[1.0, 0.0]], [[2.0, 1.0]]]))  # squared distances / step^2
    np.testing.assert_allclose(values, expected, rtol=1e-6)


def test_random_smooth_field_has_unit_variance():
    field = random_smooth_field(np.random.default_rng(0), [0, 0, 0], [400, 400, 400], 10.0)
    axis = np.arange(0, 400, 5.0)
    values = field.on_grid([axis, axis, axis])[0]
    assert abs(values.std() - 1.0) < 0.05
    assert abs(values.mean()) < 0.05


def test_radial_expansion_matches_its_formula():
    expansion = RadialExpansion(centre_mm=(10.0, 0.0, 0.0), gamma=0.3, sigma_mm=5.0)
    dz, dy, dx = expansion.on_grid([np.array([10.0, 13.0]), np.array([0.0, 4.0]), np.array([0.0])])
    assert dz[0, 0, 0] == 0 and dy[0, 0, 0] == 0  # no displacement at the centre
    r2 = 9.0 + 16.0
    factor = -0.3 * np.exp(-r2 / 50.0)
    np.testing.assert_allclose([dz[1, 1, 0], dy[1, 1, 0], dx[1, 1, 0]], [3 * factor, 4 * factor, 0.0], rtol=1e-6)


def _plain_deformation(**changes) -> SubjectDeformation:
    base = dict(rotation=np.eye(3), scale=np.ones(3), translation_mm=np.zeros(3), centre_mm=np.array([50.0, 60.0, 70.0]),
                warp=random_smooth_field(np.random.default_rng(1), [0, 0, 0], [100, 100, 100], 20.0, 3), warp_rms_mm=0.0)
    base.update(changes)
    return SubjectDeformation(**base)


def test_identity_deformation_pulls_back_onto_itself():
    axes = [np.arange(0, 20, 2.0), np.arange(0, 10, 2.0), np.arange(4, 12, 2.0)]
    coords = _plain_deformation().template_coordinates(axes)
    grid = np.meshgrid(*axes, indexing="ij")
    for c, g in zip(coords, grid):
        np.testing.assert_allclose(c, g, atol=1e-4)


def test_forward_affine_inverts_the_pull_back():
    rng = np.random.default_rng(3)
    deformation = _plain_deformation(rotation=np.linalg.qr(rng.standard_normal((3, 3)))[0] * [1, 1, 1],
                                     scale=np.array([0.95, 1.05, 1.02]), translation_mm=np.array([2.0, -3.0, 1.0]))
    template_point = np.array([[40.0, 55.0, 80.0]])
    subject_point = deformation.forward_affine(template_point)[0]
    pulled = deformation.template_coordinates([np.array([v]) for v in subject_point])[:, 0, 0, 0]
    np.testing.assert_allclose(pulled, template_point[0], atol=1e-3)


def test_warp_has_the_drawn_rms_displacement():
    template = anatomy.load_template_anatomy(2)
    for seed in range(3):
        deformation = sample_deformation(np.random.default_rng(seed), template)
        assert 2.0 <= deformation.warp_rms_mm <= 3.0
        assert np.all((deformation.scale >= 0.92) & (deformation.scale <= 1.08))
        assert np.all(np.abs(deformation.translation_mm) <= 5.0)
        angle = np.degrees(np.arccos((np.trace(deformation.rotation) - 1) / 2))
        assert angle <= np.sqrt(3) * 8.0 + 1e-6
        axes = [np.arange(0, 120, 4.0), np.arange(0, 160, 4.0), np.arange(0, 140, 4.0)]
        warped = deformation.template_coordinates(axes)
        affine = _plain_deformation(rotation=deformation.rotation, scale=deformation.scale,
                                    translation_mm=deformation.translation_mm, centre_mm=deformation.centre_mm).template_coordinates(axes)
        u = np.einsum("ij,j...->i...", np.linalg.inv(deformation.pull_back_matrix), warped - affine)
        rms = np.sqrt(np.mean(np.sum(u.astype(np.float64) ** 2, axis=0)))
        assert rms == pytest.approx(deformation.warp_rms_mm, rel=1e-3)


def test_partial_volume_is_a_one_voxel_ramp():
    phi = np.array([-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0], np.float32)
    np.testing.assert_allclose(partial_volume(phi, 2.0), [1.0, 1.0, 0.75, 0.5, 0.25, 0.0, 0.0])


def test_fit_scale_reaches_the_target_volume():
    rng = np.random.default_rng(0)
    shape = IrregularEllipsoid(radii=(1.0, 1.0, 1.0), rotation=np.eye(3), noise=outline_noise(rng, 2.0), roughness=0.0)
    weight = np.ones((40, 40, 40), np.float32)
    target = 4 / 3 * np.pi * 10.0 ** 3 / 8.0  # a 10 mm radius ball, in 2 mm voxels
    scale = fit_scale(shape, np.array([20, 20, 20]), 2.0, weight, target, (1.0, 30.0))
    assert scale == pytest.approx(10.0, rel=0.03)
    box, phi = signed_distance(shape, np.array([20, 20, 20]), scale, 2.0, weight.shape)
    assert partial_volume(phi, 2.0).sum() == pytest.approx(target, rel=0.01)


def _compartment(name, label, fraction, t1, t2, strength=np.float32(1.0)):
    fraction = np.asarray(fraction, np.float32)
    box = tuple(slice(0, n) for n in fraction.shape)
    return Compartment(name, label, box, fraction,
                       {"T1": Appearance(*t1), "T2": Appearance(*t2)}, strength)


def test_label_is_the_dominant_compartment_where_coverage_reaches_one_half():
    lesion = Lesion("brats")
    coverage = np.zeros((1, 1, 4), np.float32)
    lesion.add(_compartment("core", 1, [[[0.6, 0.3, 0.2, 0.0]]], ("wm", 0.4), ("wm", 2.0)), coverage)
    lesion.add(_compartment("edema", 2, [[[0.6, 0.4, 0.2, 0.4]]], ("wm", 0.8), ("wm", 1.8)), coverage)
    np.testing.assert_allclose(lesion.compartments[1].fraction, [[[0.4, 0.4, 0.2, 0.4]]])  # never more than the voxel
    np.testing.assert_array_equal(lesion.label_map((1, 1, 4)), [[[1, 2, 0, 0]]])


def test_lesion_change_is_linear_partial_volume_and_labels_need_a_visible_change():
    subject_t1 = {"wm": 1.0, "gm": 0.75, "csf": 0.3}
    contrast = SubjectContrast(t1_gamma=1.0, t2_gm=1.4, t2_csf=2.5)
    healthy = np.array([[[[1.0, 1.0, 1.0, 1.0, 1.0]]], [[[1.0, 1.0, 1.0, 1.0, 1.0]]]], np.float32)
    lesion = Lesion("atlas")
    coverage = np.zeros((1, 1, 5), np.float32)
    fraction = [[[1.0, 0.5, 0.0, 0.0, 1.0]]]
    lesion.add(_compartment("cavity", 1, fraction, ("csf", 1.0), ("mul", 1.2), np.full((1, 1, 5), 0.5, np.float32)), coverage)
    change = lesion_change(healthy, lesion, contrast, subject_t1)
    # T1: f * s * (0.3 - 1); T2: f * s * (1.2 - 1) * 1
    np.testing.assert_allclose(change[0, 0, 0], [-0.35, -0.175, 0, 0, -0.35], rtol=1e-6)
    np.testing.assert_allclose(change[1, 0, 0], [0.1, 0.05, 0, 0, 0.1], rtol=1e-6)
    label, kept = finalise(lesion, change)
    np.testing.assert_array_equal(label[0, 0], [1, 1, 0, 0, 1])
    np.testing.assert_allclose(kept, change)  # every change is within one voxel of a label


def test_finalise_drops_invisible_labels_and_stray_partial_volume():
    lesion = Lesion("subtle")
    coverage = np.zeros((1, 1, 6), np.float32)
    lesion.add(_compartment("wmh", 1, [[[1.0, 0.0, 0.0, 0.0, 0.3, 1.0]]], ("mul", 0.9), ("mul", 1.0)), coverage)
    change = lesion_change(np.ones((2, 1, 1, 6), np.float32), lesion, SubjectContrast(1.0, 1.4, 2.5),
                           {"wm": 1.0, "gm": 0.75, "csf": 0.3})
    change[:, 0, 0, 5] = 0.01  # a lesion that happens to match the tissue it replaced
    label, kept = finalise(lesion, change)
    np.testing.assert_array_equal(label[0, 0], [1, 0, 0, 0, 0, 0])
    assert kept[0, 0, 0, 4] == 0 and kept[0, 0, 0, 0] == pytest.approx(-0.1)


def test_acquisition_without_noise_scales_by_the_gain_and_zeroes_the_background():
    flat = SmoothField(np.zeros((2, 1, 1, 1)), np.zeros(3), 50.0)
    acquisition = Acquisition(gains=(800.0, 1200.0), bias_std=(0.1, 0.1), blur_sigma_voxels=(0.0, 0.0),
                              noise_fraction=(0.0, 0.0), bias=flat, mask_error=SmoothField(np.zeros((1, 1, 1, 1)), np.zeros(3), 50.0))
    images = np.array([[[[0.5, 1.0, 0.0]]], [[[2.0, 1.0, 0.0]]]], np.float32)
    mask = np.array([[[True, True, False]]])
    axes = [np.zeros(1), np.zeros(1), np.arange(3.0)]
    out = acquire(images, mask, acquisition, axes, np.random.default_rng(0))
    np.testing.assert_allclose(out[:, 0, 0], [[400.0, 800.0, 0.0], [2400.0, 1200.0, 0.0]])


def test_rician_noise_of_an_empty_voxel_has_the_rayleigh_mean():
    flat = SmoothField(np.zeros((2, 1, 1, 1)), np.zeros(3), 50.0)
    acquisition = Acquisition(gains=(1000.0, 1000.0), bias_std=(0.0, 0.0), blur_sigma_voxels=(0.0, 0.0),
                              noise_fraction=(0.02, 0.02), bias=flat, mask_error=SmoothField(np.zeros((1, 1, 1, 1)), np.zeros(3), 50.0))
    images = np.zeros((2, 1, 100, 1000), np.float32)
    out = acquire(images, np.ones((1, 100, 1000), bool), acquisition, [np.zeros(1), np.arange(100.0), np.arange(1000.0)],
                  np.random.default_rng(0))
    assert out.mean() == pytest.approx(20.0 * np.sqrt(np.pi / 2), rel=0.01)


def test_mask_errors_are_at_most_one_voxel():
    from scipy import ndimage

    template = anatomy.load_template_anatomy(2)
    acquisition_field = random_smooth_field(np.random.default_rng(0), [0, 0, 0], [200, 240, 200], 12.0)
    flat = SmoothField(np.zeros((2, 1, 1, 1)), np.zeros(3), 50.0)
    acquisition = Acquisition((1.0, 1.0), (0.0, 0.0), (0.0, 0.0), (0.0, 0.0), flat, acquisition_field)
    axes = [np.arange(n) * 2.0 for n in template.shape]
    truth = template.brain >= 0.5
    mask = brain_mask_with_errors(template.brain, acquisition, axes)
    assert np.all(mask <= ndimage.binary_dilation(truth)) and np.all(mask >= ndimage.binary_erosion(truth))
    assert (mask != truth).any()


def test_template_maps_follow_the_definitions():
    template = anatomy.load_template_anatomy(2)
    assert template.shape == (95, 117, 99) and template.geometry.spacing == (2.0, 2.0, 2.0)
    assert np.all(template.gm + template.wm + template.csf <= template.brain + 1e-5)
    assert template.tissue_t1["wm"] == 1.0 > template.tissue_t1["gm"] > template.tissue_t1["csf"] > 0
    healthy = render_healthy(_subject_from_template(template), SubjectContrast(1.0, 1.4, 2.5))
    assert np.all(healthy[:, template.brain == 0] == 0)


def _subject_from_template(template):
    from disyre_v2.dataset_conversion.synthetic.subject_anatomy import SubjectAnatomy

    return SubjectAnatomy(box=(slice(None),) * 3, spacing=template.spacing, t1=template.t1, gm=template.gm, wm=template.wm,
                          csf=template.csf, brain=template.brain, mni=None, depth_mm=None, csf_distance_mm=None,
                          tissue_t1=template.tissue_t1, ventricle_centre_mni=np.zeros(3))


def test_missing_template_files_name_the_file_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(mni152, "template_folder", lambda: tmp_path)
    with pytest.raises(FileNotFoundError) as error:
        mni152.template_paths()
    message = str(error.value)
    assert str(tmp_path / mni152.TEMPLATE_FILES["t1"]) in message and "pip install --force-reinstall nilearn" in message


def test_plan_cases_cycles_kinds_and_spreads_lesion_free_cases():
    specs = plan_cases(2, 10, ["brats", "atlas", "subtle"], seed=5, lesion_free_fraction=0.2)
    assert [s.kind for s in specs[:2]] == ["healthy", "healthy"] and all(s.split == "Tr" for s in specs[:2])
    assert [s.kind for s in specs[2:]] == ["brats", "atlas", "subtle", "brats", "healthy",
                                           "atlas", "subtle", "brats", "atlas", "healthy"]
    assert [s.case_id for s in specs[2:4]] == ["synth_ts_0000", "synth_ts_0001"]
