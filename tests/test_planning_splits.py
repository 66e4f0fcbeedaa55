"""splits_final.json: five seeded folds; an existing file is respected."""
import json

import pytest

from disyre_v2.planning.splits import SplitsError, ensure_splits, load_splits, make_splits

CASES = [f"case{i:02d}" for i in range(12)]


def test_five_folds_partition_the_cases_and_are_seeded():
    splits = make_splits(CASES)
    assert len(splits) == 5
    vals = [case for fold in splits for case in fold["val"]]
    assert sorted(vals) == CASES  # every case validated exactly once
    for fold in splits:
        assert sorted(fold["train"] + fold["val"]) == CASES
        assert not set(fold["train"]) & set(fold["val"])
    assert make_splits(list(reversed(CASES))) == splits  # order of the input does not matter
    assert make_splits(CASES, seed=1) != splits


def test_fewer_cases_than_folds_still_give_five_folds():
    splits = make_splits(["a", "b", "c"])
    assert [fold["val"] for fold in splits] == [["a"], ["b"], ["c"], ["a"], ["b"]]
    assert splits[0]["train"] == ["b", "c"]
    assert make_splits(["only"])[0] == {"train": ["only"], "val": ["only"]}


def test_existing_splits_file_is_respected(tmp_path):
    path = tmp_path / "splits_final.json"
    custom = [{"train": ["case00", "case01"], "val": ["case02"]}]
    path.write_text(json.dumps(custom))
    assert ensure_splits(path, CASES) == custom
    assert json.loads(path.read_text()) == custom
    new = tmp_path / "new" / "splits_final.json"
    assert ensure_splits(new, CASES) == make_splits(CASES) == json.loads(new.read_text())


def test_bad_splits_files_get_clear_errors(tmp_path):
    path = tmp_path / "splits_final.json"
    path.write_text(json.dumps([{"train": ["case00"], "val": ["ghost"]}]))
    with pytest.raises(SplitsError, match=f"{path} names case\\(s\\) that are not training cases of the dataset: ghost"):
        ensure_splits(path, CASES)
    path.write_text(json.dumps({"train": []}))
    with pytest.raises(SplitsError, match="must be a non-empty list"):
        load_splits(path)
    path.write_text("[")
    with pytest.raises(SplitsError, match="is not valid JSON"):
        load_splits(path)
