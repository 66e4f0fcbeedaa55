import json
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import average_precision_score, roc_auc_score

from disyre_v2.evaluation.evaluator import evaluate_folders
from disyre_v2.run import evaluate as cli
from tests.evaluation_data import SPACING, write_test_set
from tests.nifti_factory import write_nifti
from tests.test_evaluation_metrics import brute_force

KINDS = ["large", "small", "healthy", "large", "small", "healthy"]


@pytest.fixture
def test_set(tmp_path):
    return write_test_set(tmp_path, KINDS, restorations=True)


def top_one_percent(values):
    k = int(np.ceil(0.01 * values.size))
    return np.sort(values)[-k:].mean()


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.targets = []

    def handle_starttag(self, tag, attrs):
        self.targets += [value for name, value in attrs if name in ("src", "href")]


def test_cli_end_to_end_with_kinds_and_report(test_set, tmp_path, capsys):
    kinds_file = tmp_path / "kinds.json"
    kinds_file.write_text(json.dumps({"cases": {c.case_id: c.kind for c in test_set.cases}}))
    report = tmp_path / "report"
    assert cli.main(["-pred", str(test_set.predictions), "-ref", str(test_set.labels), "--kinds", str(kinds_file),
                     "--report", str(report)]) == 0
    assert "6 cases, protocol exact" in capsys.readouterr().out
    summary = json.loads((test_set.predictions / "summary.json").read_text())
    assert summary["n_cases"] == 6 and summary["case_ids"] == [c.case_id for c in test_set.cases]
    assert summary["protocol"] == "exact" and "pooled_exact" not in summary

    # Pooled voxel level: every brain voxel (masksTs next to labelsTs) of every case.
    scores, labels = test_set.pooled()
    pooled = summary["pooled"]
    assert pooled["average_precision"] == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    ap, (dice, threshold) = brute_force(scores, labels)
    assert pooled["best_dice"] == pytest.approx(dice, abs=1e-12)
    assert pooled["best_threshold"] == pytest.approx(threshold, rel=2.0**-13)
    assert (pooled["n_positive"], pooled["n_negative"]) == (labels.sum(), (~labels).sum())

    # Per case: Dice at the pooled threshold (score >= threshold), lesion volume in ml.
    threshold = summary["per_case_threshold"]
    for case, record in zip(test_set.cases, summary["per_case"]):
        s, lab = case.score_map[case.brain], case.label[case.brain] > 0
        predicted = s >= threshold
        assert record["predicted_voxels"] == predicted.sum() and record["brain"] == "mask"
        assert record["lesion_volume_ml"] == pytest.approx(lab.sum() * np.prod(SPACING) / 1000)
        if case.kind == "healthy":
            assert record["dice"] is None and record["average_precision"] is None and not record["anomalous"]
        else:
            assert record["dice"] == pytest.approx(2 * np.sum(predicted & lab) / (predicted.sum() + lab.sum()))
            assert record["average_precision"] == pytest.approx(average_precision_score(lab, s), abs=1e-12)
        assert record["volume_score"] == pytest.approx(top_one_percent(s), rel=1e-6)

    # Volume level and slice level against scikit-learn.
    volume_scores = [top_one_percent(c.score_map[c.brain]) for c in test_set.cases]
    anomalous = [c.kind != "healthy" for c in test_set.cases]
    assert summary["volume_level"]["auroc"] == pytest.approx(roc_auc_score(anomalous, volume_scores))
    slice_scores, slice_labels = [], []
    for c in test_set.cases:
        for z in range(c.brain.shape[0]):
            if c.brain[z].any():
                slice_scores.append(c.score_map[z][c.brain[z]].max())
                slice_labels.append(bool(c.label[z][c.brain[z]].any()))
    assert summary["slice_level"]["auroc"] == pytest.approx(roc_auc_score(slice_labels, slice_scores))
    assert summary["slice_level"]["n_normal"] + summary["slice_level"]["n_anomalous"] == len(slice_scores)

    # Per kind: the kind's own pooled curve; volume level against the lesion-free cases.
    large = [c for c in test_set.cases if c.kind == "large"]
    s = np.concatenate([c.score_map[c.brain] for c in large])
    lab = np.concatenate([c.label[c.brain] > 0 for c in large])
    assert summary["per_kind"]["large"]["average_precision"] == pytest.approx(average_precision_score(lab, s), abs=1e-12)
    assert summary["per_kind"]["large"]["n_cases"] == 2
    assert summary["per_kind"]["healthy"]["average_precision"] is None
    assert summary["per_kind"]["small"]["volume_level"]["n_normal"] == 2

    # The report: offline page whose every link resolves, readable PNGs.
    index = (report / "index.html").read_text()
    assert "<script" not in index and "http" not in index and "@import" not in index
    parser = _Links()
    parser.feed(index)
    files = [t for t in parser.targets if not t.startswith("#")]
    error_figures = {"false_positive_bands.png", "score_distributions.png", "volume_scores.png"}
    assert "pr_curve.png" in files and error_figures <= set(files) and len(files) == 10
    for target in files:
        with Image.open(report / target) as image:
            assert image.size[0] > 300 and image.size[1] > 200
    anchors = {t[1:] for t in parser.targets if t.startswith("#")}
    assert all(f'id="{a}"' in index for a in anchors) and len(anchors) == 6
    assert json.loads((report / "summary.json").read_text()) == summary
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".report")]  # no staging folder left


def test_volume_scores_csv_and_flat_kinds(test_set, tmp_path):
    # A volume score file that ranks every healthy case above every lesion: AUROC 0.
    lines = ["case_id,volume_score"] + [f"{c.case_id},{0.1 if c.kind != 'healthy' else 0.9}" for c in test_set.cases]
    (test_set.predictions / "volume_scores.csv").write_text("\n".join(lines) + "\n")
    kinds_file = tmp_path / "kinds.json"
    kinds_file.write_text(json.dumps({c.case_id: c.kind for c in test_set.cases}))
    out = tmp_path / "out" / "s.json"
    summary = evaluate_folders(test_set.predictions, test_set.labels, output=out, kinds_file=kinds_file, progress=False)
    assert out.is_file() and summary["volume_level"]["auroc"] == 0.0
    assert summary["volume_level"]["score"].startswith("volume_scores.csv")
    assert sorted(summary["per_kind"]) == ["healthy", "large", "small"]


def test_synthetic_sidecar_gives_the_kinds(test_set, tmp_path):
    from disyre_v2.evaluation.side_files import load_kinds

    kinds = {c.case_id: c.kind for c in test_set.cases}
    sidecar = {"generator": "disyre_v2_make_synthetic_dataset", "test_kinds": kinds,
               "cases": {"synth_tr_0000": {"split": "Tr", "kind": "healthy"},
                         **{case: {"split": "Ts", "kind": kind} for case, kind in kinds.items()}}}
    (test_set.root / "synthetic_cases.json").write_text(json.dumps(sidecar))
    summary = evaluate_folders(test_set.predictions, test_set.labels, progress=False)
    assert summary["folders"]["kinds"] == str((test_set.root / "synthetic_cases.json").resolve())
    assert [c["kind"] for c in summary["per_case"]] == KINDS
    # Info records with a "kind" key are read as well.
    info_only = tmp_path / "info.json"
    info_only.write_text(json.dumps({"cases": sidecar["cases"]}))
    assert load_kinds(info_only) == {"synth_tr_0000": "healthy", **kinds}


def test_protocols_from_the_command_line(test_set, tmp_path):
    outputs = {}
    for protocol in ("exact", "disyre", "upd"):
        outputs[protocol] = tmp_path / f"{protocol}.json"
        assert cli.main(["-pred", str(test_set.predictions), "-ref", str(test_set.labels), "--protocol", protocol,
                         "-o", str(outputs[protocol]), "--seed", "3"]) == 0
    exact, disyre, upd = (json.loads(outputs[p].read_text()) for p in ("exact", "disyre", "upd"))
    # Per-case, volume and slice metrics do not depend on the protocol; the exact pooled result stays reported.
    assert disyre["pooled_exact"] == exact["pooled"] and upd["per_case"] == exact["per_case"]
    assert disyre["pooled"]["n_positive"] + disyre["pooled"]["n_negative"] == 6 * 10_000
    assert disyre["pooled"]["seed"] == 3 and disyre["pooled"]["rule"] == "score > threshold"
    # 18 slices: the upd range 15..134 keeps slices 15..17 of each volume, 128 x 128 pixels each.
    assert upd["pooled"]["n_positive"] + upd["pooled"]["n_negative"] == upd["pooled"]["n_slices"] * 128 * 128
    again = tmp_path / "again.json"
    cli.main(["-pred", str(test_set.predictions), "-ref", str(test_set.labels), "--protocol", "disyre",
              "-o", str(again), "--seed", "3"])
    assert json.loads(again.read_text())["pooled"] == disyre["pooled"]


def test_brain_from_images_then_whole_grid(tmp_path, caplog):
    test_set = write_test_set(tmp_path / "a", ["large", "healthy"], masks=False)
    summary = evaluate_folders(test_set.predictions, test_set.labels, progress=False)
    assert [c["brain"] for c in summary["per_case"]] == ["images > 0", "images > 0"]
    assert summary["per_case"][0]["brain_voxels"] == test_set.cases[0].brain.sum()

    bare = write_test_set(tmp_path / "b", ["large"], masks=False, images=False)
    summary = evaluate_folders(bare.predictions, bare.labels, progress=False)
    assert summary["per_case"][0]["brain"] == "whole grid"
    assert summary["per_case"][0]["brain_voxels"] == bare.cases[0].label.size
    assert "every voxel of the grid counts as brain" in caplog.text


def run_expecting_error(capsys, test_set, *extra):
    argv = ["-pred", str(test_set.predictions), "-ref", str(test_set.labels), *extra]
    assert cli.main(argv) == 2
    assert not (test_set.predictions / "summary.json").exists()  # nothing half-written
    return capsys.readouterr().err


def test_missing_prediction_names_the_case(test_set, capsys):
    (test_set.predictions / "case_004.nii.gz").unlink()
    err = run_expecting_error(capsys, test_set)
    assert "No prediction for case(s) case_004" in err and str(test_set.predictions / "case_004.nii.gz") in err


def test_prediction_on_another_grid_names_both_files(test_set, capsys):
    case = test_set.cases[1]
    write_nifti(test_set.predictions / f"{case.case_id}.nii.gz", case.score_map, spacing=(1.0, 2.0, 2.0))
    err = run_expecting_error(capsys, test_set)
    assert str(test_set.predictions / "case_001.nii.gz") in err and str(test_set.labels / "case_001.nii.gz") in err
    assert "spacing" in err


def test_empty_brain_mask_is_refused(test_set, capsys):
    mask = test_set.root / "masksTs" / "case_002.nii.gz"
    write_nifti(mask, np.zeros(test_set.cases[2].brain.shape, np.uint8), spacing=SPACING)
    err = run_expecting_error(capsys, test_set)
    assert str(mask) in err and "empty" in err


def test_nan_in_a_map_is_refused(test_set, capsys):
    score_map = test_set.cases[3].score_map.copy()
    score_map[5, 5, 5] = np.nan
    path = write_nifti(test_set.predictions / "case_003.nii.gz", score_map, spacing=SPACING)
    err = run_expecting_error(capsys, test_set)
    assert str(path) in err and "NaN" in err
    # The message fits what the file is: an anomaly map, to be predicted again (not "before conversion").
    assert f"The anomaly map {path} contains 1 NaN or infinite voxel(s)" in err
    assert "Predict case case_003 again (disyre_v2_predict)" in err and "conversion" not in err


def test_other_bad_inputs(test_set, tmp_path, capsys):
    kinds_file = tmp_path / "kinds.json"
    kinds_file.write_text(json.dumps({"case_000": "large"}))
    assert "gives no kind for case(s) case_001" in run_expecting_error(capsys, test_set, "--kinds", str(kinds_file))

    (test_set.predictions / "volume_scores.csv").write_text("case,score\ncase_000,0.1\n")
    assert re.search(r"volume_scores.csv must start with the header", run_expecting_error(capsys, test_set))
    (test_set.predictions / "volume_scores.csv").unlink()

    occupied = tmp_path / "not_a_report"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("mine")
    err = run_expecting_error(capsys, test_set, "--report", str(occupied))
    assert "is not a disyre_v2 report" in err and (occupied / "notes.txt").read_text() == "mine"

    with pytest.raises(SystemExit):
        cli.main(["-pred", str(test_set.predictions), "-ref", str(test_set.labels), "--protocol", "brats"])
