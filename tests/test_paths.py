import pytest

from disyre_v2 import paths
from disyre_v2.paths import DatasetNotFoundError, MissingEnvironmentVariable


def test_unset_variable_names_itself_and_shows_export(monkeypatch):
    monkeypatch.delenv("DISYRE_preprocessed", raising=False)
    with pytest.raises(MissingEnvironmentVariable, match=r"(?s)DISYRE_preprocessed is not set.*export DISYRE_preprocessed="):
        paths.preprocessed_folder()


def test_base_folders_read_the_environment(disyre_env):
    assert paths.raw_folder() == disyre_env["raw"]
    assert paths.results_folder() == disyre_env["results"]


@pytest.mark.parametrize("identifier", [1, "1", "001", "Dataset001_CamCAN"])
def test_every_form_of_id_resolves(disyre_env, identifier):
    (disyre_env["raw"] / "Dataset001_CamCAN").mkdir()
    (disyre_env["raw"] / "Dataset002_BraTS").mkdir()
    assert paths.resolve_dataset_name(identifier) == "Dataset001_CamCAN"


def test_dataset_found_in_preprocessed_only(disyre_env):
    (disyre_env["preprocessed"] / "Dataset005_X").mkdir()
    assert paths.resolve_dataset_name(5) == "Dataset005_X"


def test_unknown_id_lists_existing(disyre_env):
    (disyre_env["raw"] / "Dataset001_CamCAN").mkdir()
    with pytest.raises(DatasetNotFoundError, match=r"No dataset with id 007.*Existing datasets: Dataset001_CamCAN"):
        paths.resolve_dataset_name("7")


def test_unknown_full_name_lists_existing(disyre_env):
    (disyre_env["raw"] / "Dataset001_CamCAN").mkdir()
    with pytest.raises(DatasetNotFoundError, match=r"Dataset001_Other not found.*Dataset001_CamCAN"):
        paths.resolve_dataset_name("Dataset001_Other")


def test_ambiguous_id_lists_both(disyre_env):
    (disyre_env["raw"] / "Dataset003_A").mkdir()
    (disyre_env["preprocessed"] / "Dataset003_B").mkdir()
    with pytest.raises(DatasetNotFoundError, match=r"ambiguous: Dataset003_A, Dataset003_B"):
        paths.resolve_dataset_name(3)


def test_malformed_identifier_is_refused(disyre_env):
    with pytest.raises(DatasetNotFoundError, match="not a dataset identifier"):
        paths.resolve_dataset_name("Dataset1_X")


def test_dataset_name_formats_and_validates():
    assert paths.dataset_name(7, "BraTS2020") == "Dataset007_BraTS2020"
    with pytest.raises(ValueError, match="Invalid dataset name"):
        paths.dataset_name(7, "with space")
    with pytest.raises(ValueError, match="0 to 999"):
        paths.dataset_name(1000, "X")
