"""benchmarks/reproduce_paper.py: the paper's experiments in one resumable command, end to end on small
replicas of CamCAN, ATLAS and BraTS 2020 (tests/replicas.py: already skull-stripped and on the template
grid, so no registration runs), and the releases' raw whole-head scans prepared onto --template; the
table writer on known inputs; the refusals."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from disyre_v2.evaluation.paper_tables import TableRow, cell_text, compare, markdown, write_table
from tests.replicas import write_atlas, write_brats2020, write_camcan

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "reproduce_paper.py"
# The smallest network and batch that run every stage in seconds on a CPU (editing plans is supported).
TINY_PLANS = {"batch": {"n_volumes": 2, "n_slices": 2}, "network.kwargs.widths": [8, 16],
              "network.kwargs.attention_levels": [1], "network.kwargs.norm_groups": 4, "patch_size": [8, 8],
              "anomaly_synthesis.foreign_patch_cache_size": 4, "training.warmup_steps": 1}


def load_script():
    spec = importlib.util.spec_from_file_location("reproduce_paper", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["reproduce_paper"] = module
    spec.loader.exec_module(module)
    return module


def write_replicas(base: Path) -> dict[str, Path]:
    write_camcan(base / "camcan", raw=False, derivatives="flat")
    write_atlas(base / "atlas", training=(("R001", "sub-r001s001"), ("R002", "sub-r002s001")), derivatives=True)
    write_brats2020(base / "brats", cases=("BraTS20_Training_001", "BraTS20_Training_002"))
    (base / "tiny.json").write_text(json.dumps(TINY_PLANS))
    (base / "exclude.txt").write_text("# problem cases\nr002s001\n")
    return {"camcan": base / "camcan", "atlas": base / "atlas", "brats": base / "brats"}


def command(data: dict[str, Path], base: Path, output: Path, tables=("1", "2")) -> list[str]:
    return ["--camcan", str(data["camcan"]), "--atlas", str(data["atlas"]), "--brats", str(data["brats"]),
            "-o", str(output), "--configuration", "2d", "--steps", "2", "--seeds", "0", "--timing_steps", "1",
            "--deterministic", "--plans_override", str(base / "tiny.json"), "-np", "0",
            "--atlas_exclude", str(base / "exclude.txt"), "--tables", *tables]


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("paper")
    data = write_replicas(base)
    script = load_script()
    with pytest.MonkeyPatch.context() as patch:
        for key in ("DISYRE_raw", "DISYRE_preprocessed", "DISYRE_results"):
            patch.setenv(key, str(base / "unused"))  # the script points these under -o; restored afterwards
        patch.setenv("DISYRE_n_proc_DA", "0")
        assert script.main(command(data, base, base / "work")) == 0
    return script, data, base


# -- the table writer on known inputs ---------------------------------------------------------------
COLUMNS = [("ATLAS_ap", "ATLAS AP"), ("ATLAS_dice", "ATLAS [Dice]")]


def test_table_writer_puts_the_paper_beside_the_mean_over_seeds(tmp_path):
    rows = [TableRow("DISYRE v2", {"ATLAS_ap": 0.33, "ATLAS_dice": 0.45}, {"ATLAS_ap": [0.30, 0.32], "ATLAS_dice": [0.5, None]}),
            TableRow("FAE", {"ATLAS_ap": 0.08, "ATLAS_dice": 0.18}, status="not built", note="weights")]
    compared = compare(rows, COLUMNS)
    cell = compared[0]["cells"]["ATLAS_ap"]
    assert cell["ours"] == pytest.approx(0.31) and cell["difference"] == pytest.approx(-0.02)
    assert cell["std"] == pytest.approx(0.01) and cell["seeds"] == 2
    assert compared[0]["cells"]["ATLAS_dice"]["seeds"] == 1  # a seed without a value does not count
    assert markdown(compared, COLUMNS).splitlines() == [
        "| method | ATLAS AP | ATLAS [Dice] |",
        "| --- | ---: | ---: |",
        "| DISYRE v2 | 0.310 (0.33, -0.020) | 0.500 (0.45, +0.050) |",
        "| FAE | not built (0.08) | not built (0.18) |",
    ]
    write_table(compared, COLUMNS, tmp_path / "t.md", tmp_path / "t.json", title="Table 1", notes=["Subset: all."],
                metadata={"protocol": "disyre"})
    text = (tmp_path / "t.md").read_text()
    assert text.startswith("# Table 1\n") and text.endswith("- Subset: all.\n")
    data = json.loads((tmp_path / "t.json").read_text())
    assert data["protocol"] == "disyre" and data["rows"][1]["status"] == "not built"
    assert data["rows"][0]["cells"]["ATLAS_dice"] == {"paper": 0.45, "ours": 0.5, "difference": pytest.approx(0.05),
                                                      "std": None, "seeds": 1, "per_seed": [0.5, None]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.json", "t.md"]  # no temporary left


def test_training_note_says_when_the_papers_validation_split_was_not_followed():
    script = load_script()
    assert script.training_note({"numTraining": 603, "validationCases": ["sub-CC1"] * 50}) == (
        "trained on CamCAN (603 training subjects, 50 held-out validation subjects), one model per modality.")
    unsplit = script.training_note({"numTraining": 653})
    assert "653 training subjects, no validation subjects held out" in unsplit
    assert "no --camcan_validation was given" in unsplit and "the paper held out 50" in unsplit


def test_cell_without_our_figure_shows_a_dash():
    assert cell_text({"paper": 0.5, "ours": None, "difference": None}, "ok") == "- (0.50, -)"


# -- end to end ------------------------------------------------------------------------------------
def test_straight_run_writes_both_tables_with_the_papers_figures(straight_run):
    _, _, base = straight_run
    work = base / "work"
    table1 = json.loads((work / "tables" / "table1.json").read_text())
    rows = {row["method"]: row for row in table1["rows"]}
    assert table1["protocol"] == "disyre"
    v2 = rows["DISYRE v2"]["cells"]
    assert v2["BraTS-T2_ap"]["paper"] == 0.79 and 0 < v2["BraTS-T2_ap"]["ours"] <= 1
    assert v2["BraTS-T2_ap"]["difference"] == pytest.approx(v2["BraTS-T2_ap"]["ours"] - 0.79)
    assert rows["FAE"]["status"] == "not built" and rows["DAE"]["status"] == "not run"
    table2 = json.loads((work / "tables" / "table2.json").read_text())
    assert len(table2["rows"]) == 6 and all(row["status"] == "ok" for row in table2["rows"])
    assert table2["atlas_excluded"] == ["sub-r002s001_ses-1"]
    markdown_text = (work / "tables" / "table2.md").read_text()
    assert "ATLAS without the 1 case(s) of --atlas_exclude" in markdown_text and "(1 of 2)" in markdown_text
    assert "no median filter" in markdown_text and "mean of seeds" in markdown_text
    assert "no validation subjects held out: no --camcan_validation was given" in markdown_text
    # Table 2's ATLAS column is the subset's; Table 1's is all cases.
    evaluation = work / "evaluation" / "ATLAS" / "DisyreTrainer__ensemble" / "seed_0"
    assert (evaluation / "disyre_table2_subset.json").is_file() and (evaluation / "exact.json").is_file()
    subset = json.loads((evaluation / "disyre_table2_subset.json").read_text())
    assert table2["rows"][0]["cells"]["ATLAS_ap"]["ours"] == pytest.approx(subset["pooled"]["average_precision"])
    # One map per seed, written without the median filter.
    sidecar = json.loads((work / "maps" / "BraTS-T1" / "DisyreTrainer__ensemble" / "seed_0" /
                          ".BraTS20_Training_001.json").read_text())
    assert sidecar["median_filter_size"] == 0
    assert json.loads((work / "timing" / "estimate.json").read_text())["step_s"] > 0


def test_killed_run_continues_without_redoing_finished_stages(straight_run, tmp_path, monkeypatch):
    script, data, base = straight_run
    work = tmp_path / "work"
    for key in ("DISYRE_raw", "DISYRE_preprocessed", "DISYRE_results"):
        monkeypatch.setenv(key, str(tmp_path / "unused"))
    monkeypatch.setenv("DISYRE_n_proc_DA", "0")

    def kill_after_first_model(stage, key):
        if stage == "train":
            raise KeyboardInterrupt("simulated kill")

    monkeypatch.setattr(script, "STAGE_HOOK", kill_after_first_model)
    with pytest.raises(KeyboardInterrupt):
        script.main(command(data, base, work, tables=("1",)))
    first = next(work.glob("results/*/*/fold_all_seed_0/checkpoint_final.pth"))
    stamp = first.stat().st_mtime_ns
    assert not (work / "tables").exists()

    # Without --continue the earlier run is refused; with it, it finishes.
    assert script.main(command(data, base, work, tables=("1",))) == 2
    monkeypatch.setattr(script, "STAGE_HOOK", lambda stage, key: None)
    assert script.main(command(data, base, work, tables=("1",)) + ["--continue"]) == 0
    assert first.stat().st_mtime_ns == stamp  # the model trained before the kill was not trained again
    resumed = json.loads((work / "tables" / "table1.json").read_text())["rows"]
    straight = json.loads((base / "work" / "tables" / "table1.json").read_text())["rows"]
    assert resumed == straight  # deterministic training: the same table as a straight run


# -- refusals ---------------------------------------------------------------------------------------
def refused(script, argv, capsys) -> str:
    assert script.main(argv) == 2
    return capsys.readouterr().err


def test_missing_dataset_folder_is_refused_before_anything_is_written(straight_run, tmp_path, capsys):
    script, data, base = straight_run
    argv = command({**data, "brats": tmp_path / "no_brats"}, base, tmp_path / "work")
    assert "the --brats folder does not exist" in refused(script, argv, capsys)
    assert not (tmp_path / "work").exists()


def test_exclusion_list_with_unknown_ids_is_refused(straight_run, tmp_path, capsys):
    script, data, base = straight_run
    (tmp_path / "exclude.txt").write_text("r002s001\nr999s999\n")
    argv = command(data, base, tmp_path / "work")
    argv[argv.index("--atlas_exclude") + 1] = str(tmp_path / "exclude.txt")
    error = refused(script, argv, capsys)
    assert "1 id(s) of --atlas_exclude name no ATLAS case" in error and "r999s999" in error
    assert not (tmp_path / "work").exists()


def test_unknown_method_is_refused(straight_run, tmp_path, capsys):
    script, data, base = straight_run
    error = refused(script, command(data, base, tmp_path / "work") + ["--methods", "NoSuchTrainer"], capsys)
    assert "unknown method 'NoSuchTrainer' in --methods" in error and "DaeTrainer (DAE)" in error
    assert not (tmp_path / "work").exists()


def test_raw_scans_without_template_are_refused(straight_run, tmp_path, capsys):
    script, data, base = straight_run
    write_camcan(tmp_path / "camcan_raw", raw=True, derivatives=None)
    error = refused(script, command({**data, "camcan": tmp_path / "camcan_raw"}, base, tmp_path / "work"), capsys)
    assert "need preparation" in error and "--template" in error


def test_help_documents_the_flags():
    text = load_script().build_parser().format_help()
    for flag in ("--camcan", "--atlas", "--brats", "--template", "--atlas_exclude", "--steps", "--seeds", "--device",
                 "--tables", "--methods", "--continue"):
        assert flag in text


# -- raw downloads: preparation onto --template -----------------------------------------------------
def test_raw_camcan_and_atlas_are_prepared_onto_the_template_end_to_end(tmp_path, monkeypatch):
    """The releases' whole-head scans (CamCAN's BIDS tree with T2s moved by head motion, ATLAS's MNI152
    T1s with lesion masks), each a real head (ROBEX's reference subject) moved by a known affine, with BraTS on the template's grid:
    the command skull-strips and registers them and moves ATLAS's masks along, before planning (from
    which on the straight run tests the same code). ROBEX is stood in for by each head's true brain mask
    (ROBEX itself: tests/test_prepare_raw_scans.py; a minute or two per scan would take this test past
    the suite's budget)."""
    import numpy as np
    import SimpleITK as sitk

    from disyre_v2.preparation import prepare_case
    from tests.head_anatomy import head_and_mask, known_affine, warped_head

    head, brain = head_and_mask(3.0)
    template = sitk.Mask(head, brain)
    template_path = tmp_path / "template_brain.nii.gz"
    sitk.WriteImage(template, str(template_path))
    true_brains: dict[tuple, sitk.Image] = {}  # a scan's grid centre (mm) → its brain mask (the grids differ)

    def grid_centre(image: sitk.Image) -> tuple:  # the same point whatever the storage order
        return tuple(np.round(image.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in image.GetSize()])))

    def whole_head(seed: int) -> tuple[sitk.Image, sitk.Image]:
        scan, mask = warped_head(known_affine(seed))
        true_brains[grid_centre(scan)] = mask
        return scan, mask

    camcan = tmp_path / "cc700" / "mri" / "pipeline" / "release004" / "BIDS_20190411" / "anat"
    for k, subject in enumerate(("CC110033", "CC110037")):
        folder = camcan / f"sub-{subject}" / "anat"
        folder.mkdir(parents=True)
        t1, _ = whole_head(40 + k)
        sitk.WriteImage(sitk.Cast(t1, sitk.sitkInt16), str(folder / f"sub-{subject}_T1w.nii.gz"))
        # The T2: the brain's contrast inverted, acquired after a small head motion, on a grid of its own.
        array = sitk.GetArrayFromImage(t1)
        t2 = sitk.GetImageFromArray(np.where(array > 0, array.max() * 1.2 - array, 0).astype(np.float32))
        t2.CopyInformation(t1)
        motion = sitk.Euler3DTransform()
        motion.SetCenter(grid_centre(t1))
        motion.SetRotation(0.05, -0.04, 0.03)
        motion.SetTranslation((4.0, -3.0, 5.0))
        t2_grid = sitk.Image([n + 4 for n in t1.GetSize()], sitk.sitkFloat32)
        t2_grid.SetSpacing([s * 1.05 for s in t1.GetSpacing()])
        t2_grid.SetDirection(t1.GetDirection())
        t2_grid.SetOrigin([o - 6.0 for o in t1.GetOrigin()])
        sitk.WriteImage(sitk.Cast(sitk.Resample(t2, t2_grid, motion.GetInverse(), sitk.sitkLinear, 0.0), sitk.sitkInt16),
                        str(folder / f"sub-{subject}_T2w.nii.gz"))
    lesion_ml = {}
    for k, (cohort, subject) in enumerate((("R001", "sub-r001s001"), ("R002", "sub-r002s001"))):
        case = f"{subject}_ses-1"
        anat = tmp_path / "ATLAS_2" / "Training" / cohort / subject / "ses-1" / "anat"
        anat.mkdir(parents=True)
        scan, mask = whole_head(50 + k)
        brain_array = sitk.GetArrayFromImage(mask)
        centre = np.round(np.argwhere(brain_array).mean(axis=0)).astype(int)
        zz, yy, xx = np.indices(brain_array.shape)
        spacing_zyx = np.array(scan.GetSpacing())[::-1]
        distance = np.sqrt(sum(((g - c) * s) ** 2 for g, c, s in zip((zz, yy, xx), centre, spacing_zyx)))
        lesion = ((distance < 12.0) & (brain_array > 0)).astype(np.uint8)  # a 12 mm ball in the brain
        array = sitk.GetArrayFromImage(scan)
        darker = sitk.GetImageFromArray(np.where(lesion > 0, array * 0.4, array).astype(np.float32))
        darker.CopyInformation(scan)
        lesion_image = sitk.GetImageFromArray(lesion)
        lesion_image.CopyInformation(scan)
        lesion_ml[case] = lesion.sum() * np.prod(scan.GetSpacing()) / 1000
        sitk.WriteImage(darker, str(anat / f"{case}_space-MNI152NLin2009aSym_T1w.nii.gz"))
        sitk.WriteImage(lesion_image, str(anat / f"{case}_space-MNI152NLin2009aSym_label-L_desc-T1lesion_mask.nii.gz"))
    # BraTS as distributed: skull-stripped, on the template's grid, a tumour bright in T2 and dark in T1.
    brats = tmp_path / "MICCAI_BraTS2020_TrainingData"
    template_array = sitk.GetArrayFromImage(template)
    zz, yy, xx = np.indices(template_array.shape)
    for k, case in enumerate(("BraTS20_Training_001", "BraTS20_Training_002")):
        centre = np.array(template_array.shape) // 2 + (k * 3, 0, -k * 3)
        tumour = (np.sqrt((zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2) < 4) & (template_array > 0)
        (brats / case).mkdir(parents=True)
        for modality, factor in (("t1", 0.4), ("t1ce", 1.0), ("t2", 2.0), ("flair", 2.0)):
            image = sitk.GetImageFromArray(np.where(tumour, template_array * factor, template_array).astype(np.int16))
            image.CopyInformation(template)
            sitk.WriteImage(image, str(brats / case / f"{case}_{modality}.nii.gz"))
        seg = sitk.GetImageFromArray((tumour * 2).astype(np.uint8))
        seg.CopyInformation(template)
        sitk.WriteImage(seg, str(brats / case / f"{case}_seg.nii.gz"))

    def true_brain_mask(image, *, seed=0, scan=""):  # onto the grid prepare_scan strips (reoriented to the template)
        return sitk.Resample(true_brains[grid_centre(image)], image, sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                             sitk.sitkUInt8)

    monkeypatch.setattr(prepare_case, "robex_mask", true_brain_mask)
    for key in ("DISYRE_raw", "DISYRE_preprocessed", "DISYRE_results"):
        monkeypatch.setenv(key, str(tmp_path / "unused"))
    monkeypatch.setenv("DISYRE_n_proc_DA", "0")
    work = tmp_path / "work"
    script = load_script()

    def stop_after_conversion(stage, key):  # planning onwards is the straight run's, on the same code
        if key == "convert_ATLAS":
            raise KeyboardInterrupt("stopped after conversion")

    monkeypatch.setattr(script, "STAGE_HOOK", stop_after_conversion)
    with pytest.raises(KeyboardInterrupt):
        script.main(["--camcan", str(tmp_path / "cc700"), "--atlas", str(tmp_path / "ATLAS_2"), "--brats", str(brats),
                     "--template", str(template_path), "-o", str(work), "--configuration", "2d", "--steps", "2",
                     "--seeds", "0", "-np", "0", "--tables", "1"])

    def on_template_grid(path: Path) -> sitk.Image:
        image = sitk.ReadImage(str(path))
        assert image.GetSize() == template.GetSize(), path
        assert np.allclose(image.GetOrigin(), template.GetOrigin(), atol=1e-3), path
        return image

    masks = {}
    for modality in ("T1", "T2"):
        dataset = next(work.glob(f"raw/Dataset*_CamCAN_{modality}"))
        assert json.loads((dataset / "dataset.json").read_text())["channel_names"] == {"0": modality}
        images = sorted((dataset / "imagesTr").glob("*.nii.gz"))
        assert [p.name for p in images] == ["CC110033_0000.nii.gz", "CC110037_0000.nii.gz"]
        for path in images:
            on_template_grid(path)
        masks[modality] = [sitk.GetArrayFromImage(sitk.ReadImage(str(p))) for p in sorted((dataset / "masksTr").glob("*"))]
    # As in the UPD setup, the T2 has the T1's brain: one ROBEX mask and one affine per subject.
    assert all(np.array_equal(a, b) and a.any() for a, b in zip(masks["T1"], masks["T2"]))
    t1_image = sitk.GetArrayFromImage(sitk.ReadImage(str(next(work.glob("raw/Dataset*_CamCAN_T1")) / "imagesTr" / "CC110033_0000.nii.gz")))
    t2_image = sitk.GetArrayFromImage(sitk.ReadImage(str(next(work.glob("raw/Dataset*_CamCAN_T2")) / "imagesTr" / "CC110033_0000.nii.gz")))
    inside = masks["T1"][0] > 0
    assert np.corrcoef(t1_image[inside], t2_image[inside])[0, 1] < -0.8  # the inverted contrast, aligned voxel by voxel
    assert not (work / "staging_camcan").exists()
    atlas = next(work.glob("raw/Dataset*_ATLAS"))
    template_brain = sitk.GetArrayFromImage(brain) > 0
    for case, ml in lesion_ml.items():
        label = sitk.GetArrayFromImage(on_template_grid(atlas / "labelsTs" / f"{case}.nii.gz")) > 0
        moved_ml = label.sum() * 27 / 1000  # 3 mm voxels
        assert 0.7 * ml <= moved_ml <= 1.3 * ml, (case, ml, moved_ml)  # the known affines scale by 0.9-1.1 per axis
        assert (label & template_brain).sum() >= 0.9 * label.sum()  # and it lands inside the template's brain
        on_template_grid(next((atlas / "imagesTs").glob(f"{case}_0000.nii.gz")))
    assert not (work / "staging").exists()
    # What the tables' notes will say of each dataset.
    assert json.loads((work / "state" / "conversion.json").read_text()) == {
        "CamCAN_T1": script.PREPARED_CAMCAN["T1"], "CamCAN_T2": script.PREPARED_CAMCAN["T2"],
        "BraTS2020_T1": "as distributed (skull-stripped, on SRI24)", "BraTS2020_T2": "as distributed (skull-stripped, on SRI24)",
        "ATLAS": "prepared onto --template (ROBEX, affine), lesion masks moved along"}
