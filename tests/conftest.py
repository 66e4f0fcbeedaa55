import pytest


@pytest.fixture
def disyre_env(tmp_path, monkeypatch):
    """The three base folders under tmp_path, set in the environment."""
    folders = {}
    for key, sub in (("DISYRE_raw", "raw"), ("DISYRE_preprocessed", "preprocessed"), ("DISYRE_results", "results")):
        folder = tmp_path / sub
        folder.mkdir()
        monkeypatch.setenv(key, str(folder))
        folders[sub] = folder
    return folders
