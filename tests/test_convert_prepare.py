"""Converters with --prepare: raw whole-head downloads (CamCAN BIDS, IXI, a folder) convert in one command."""
import json

import numpy as np
import pytest
import SimpleITK as sitk

from disyre_v2.run import convert_camcan, convert_folder, convert_ixi
from tests.head_anatomy import head_and_mask, known_affine, warped_head, write_template


def template_flags(tmp_path):
    template, mask = write_template(tmp_path)
    return ["--prepare", "--skull_strip", "template", "--template", template, "--template_mask", mask]


def check_prepared_dataset(dataset, cases, split="Tr", channels=1):
    template = head_and_mask()[0]
    for case in cases:
        for c in range(channels):
            image = sitk.ReadImage(str(dataset / f"images{split}" / f"{case}_{c:04d}.nii.gz"))
            assert image.GetSize() == template.GetSize()
            assert np.allclose(image.GetOrigin(), template.GetOrigin(), atol=1e-3)
        assert (dataset / f"masks{split}" / f"{case}.nii.gz").is_file()
        record = json.loads((dataset / "preparation" / f"{case}.json").read_text())
        assert record["mutual_information"] > 0.5
        assert (dataset / "preparation" / f"{case}.tfm").is_file()
        assert (dataset / "preparation" / f"{case}_qa.png").is_file()
    assert not list(dataset.parent.glob(".disyre-prepare-*"))  # the work folder is gone


def test_raw_camcan_bids_converts_with_prepare(tmp_path, disyre_env):
    anat = tmp_path / "cc700" / "mri" / "pipeline" / "release004" / "BIDS_20190411" / "anat"
    for k, subject in enumerate(("CC110033", "CC110037")):
        folder = anat / f"sub-{subject}" / "anat"
        folder.mkdir(parents=True)
        t1, _ = warped_head(known_affine(20 + k))
        sitk.WriteImage(t1, str(folder / f"sub-{subject}_T1w.nii.gz"))
        moved = sitk.Euler3DTransform()  # the T2 is acquired after a small head motion
        moved.SetCenter(t1.TransformContinuousIndexToPhysicalPoint([n / 2 for n in t1.GetSize()]))
        moved.SetRotation(0.05, -0.04, 0.03)
        moved.SetTranslation((4.0, -3.0, 5.0))
        array = sitk.GetArrayFromImage(t1)
        t2 = sitk.GetImageFromArray(np.where(array > 0, array.max() * 1.2 - array, 0).astype(np.float32))
        t2.CopyInformation(t1)
        sitk.WriteImage(sitk.Resample(t2, t1, moved.GetInverse(), sitk.sitkLinear, 0.0),
                        str(folder / f"sub-{subject}_T2w.nii.gz"))
    # Without --prepare the raw scans are refused, and the message says what to do.
    assert convert_camcan.main(["-i", str(tmp_path / "cc700"), "-d", "7", "--modalities", "T1", "T2"]) == 2
    assert convert_camcan.main(["-i", str(tmp_path / "cc700"), "-d", "7", "--modalities", "T1", "T2"]
                               + template_flags(tmp_path)) == 0
    dataset = disyre_env["raw"] / "Dataset007_CamCAN_T1_T2"
    check_prepared_dataset(dataset, ["CC110033", "CC110037"], channels=2)
    assert json.loads((dataset / "dataset.json").read_text())["numTraining"] == 2


def test_raw_ixi_stored_sagittally_converts_with_prepare(tmp_path, disyre_env):
    folder = tmp_path / "IXI-T1"
    folder.mkdir()
    sitk.WriteImage(warped_head(known_affine(30), sagittal=True)[0], str(folder / "IXI002-Guys-0828-T1.nii.gz"))
    sitk.WriteImage(warped_head(known_affine(31))[0], str(folder / "IXI012-HH-1211-T1.nii.gz"))
    assert convert_ixi.main(["-i", str(folder), "-d", "8", "--modality", "T1", "-np", "2"]
                            + template_flags(tmp_path)) == 0
    check_prepared_dataset(disyre_env["raw"] / "Dataset008_IXI_T1", ["IXI002-Guys-0828", "IXI012-HH-1211"])


def test_folder_with_a_bad_scan_names_it_and_writes_nothing(tmp_path, disyre_env, capsys):
    images, labels = tmp_path / "patients", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    head, brain = warped_head(known_affine(40))
    sitk.WriteImage(head, str(images / "p1.nii.gz"))
    label = sitk.Cast(brain, sitk.sitkUInt8) * 0
    sitk.WriteImage(label, str(labels / "p1.nii.gz"))
    noise = sitk.GetImageFromArray(np.random.default_rng(0).uniform(0, 900, (50, 60, 50)).astype(np.float32))
    sitk.WriteImage(noise, str(images / "p2.nii.gz"))
    sitk.WriteImage(noise * 0, str(labels / "p2.nii.gz"))
    args = ["-i", str(images), "-d", "9", "--role", "test", "--labels", str(labels)] + template_flags(tmp_path)
    assert convert_folder.main(args) == 2
    assert "p2" in capsys.readouterr().err and not list(disyre_env["raw"].iterdir())


@pytest.mark.parametrize("converter, args", [
    (convert_ixi, ["--modality", "T1"]),
    (convert_camcan, []),
])
def test_prepare_flags_are_documented_in_help(converter, args):
    text = converter.build_parser().format_help()
    for flag in ("--prepare", "--skull_strip", "--template", "--bias_correction", "-np"):
        assert flag in text
