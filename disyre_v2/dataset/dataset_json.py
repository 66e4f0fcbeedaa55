"""``dataset.json``: what a raw dataset holds (see documentation/reference/dataset_format.md)."""
from __future__ import annotations

import json
from pathlib import Path

from disyre_v2.imageio.atomic import atomic_path

REQUIRED_KEYS = ("name", "channel_names", "file_ending", "numTraining", "numTest")
SUPPORTED_FILE_ENDINGS = (".nii.gz", ".nii")


class DatasetJsonError(ValueError):
    """dataset.json is missing or malformed."""


def write_json_atomic(data: dict, path: Path | str) -> Path:
    """Write JSON through a temporary sibling and a rename, so readers never see half a file."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


def write_dataset_json(
    folder: Path | str,
    name: str,
    channel_names: dict[int, str] | list[str],
    num_training: int,
    num_test: int,
    *,
    file_ending: str = ".nii.gz",
    masks_tr: bool = False,
    masks_ts: bool = False,
    labels_ts: bool = False,
    labels: dict[str, int] | None = None,
    description: str = "",
    **extra,
) -> Path:
    """Write ``folder/dataset.json``.

    ``masks_tr``, ``masks_ts`` and ``labels_ts`` declare that every case of that split has a file
    in masksTr/masksTs/labelsTs; ``labels`` optionally names the label values (> 0 is anomalous).
    """
    if isinstance(channel_names, (list, tuple)):
        channel_names = dict(enumerate(channel_names))
    data = {
        "name": name,
        "description": description,
        "channel_names": {str(k): str(v) for k, v in sorted(channel_names.items())},
        "file_ending": file_ending,
        "numTraining": int(num_training),
        "numTest": int(num_test),
        "masksTr": bool(masks_tr),
        "masksTs": bool(masks_ts),
        "labelsTs": bool(labels_ts),
    }
    if labels is not None:
        data["labels"] = {str(k): int(v) for k, v in labels.items()}
    data.update(extra)
    _validate(data, Path(folder) / "dataset.json")
    return write_json_atomic(data, Path(folder) / "dataset.json")


def load_dataset_json(folder: Path | str) -> dict:
    """Read and validate ``folder/dataset.json``."""
    path = Path(folder) / "dataset.json"
    if not path.is_file():
        raise DatasetJsonError(
            f"{path} does not exist. Every raw dataset needs one: convert the data with a "
            f"disyre_v2_convert_* command, or write it as shown in documentation/reference/dataset_format.md."
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DatasetJsonError(f"{path} is not valid JSON ({error}).") from None
    _validate(data, path)
    data.setdefault("masksTr", False)
    data.setdefault("masksTs", False)
    data.setdefault("labelsTs", False)
    return data


def _validate(data: dict, path: Path) -> None:
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise DatasetJsonError(f"{path} lacks the key(s) {', '.join(missing)}.")
    channels = data["channel_names"]
    if not isinstance(channels, dict) or not channels:
        raise DatasetJsonError(f"{path}: channel_names must be a non-empty mapping such as {{\"0\": \"T1\"}}.")
    expected = [str(i) for i in range(len(channels))]
    if sorted(channels, key=lambda k: int(k) if str(k).isdigit() else -1) != expected:
        raise DatasetJsonError(f"{path}: channel_names keys must be 0..{len(channels) - 1}, got {list(channels)}.")
    if data["file_ending"] not in SUPPORTED_FILE_ENDINGS:
        raise DatasetJsonError(
            f"{path}: file_ending {data['file_ending']!r} is not supported; use one of {SUPPORTED_FILE_ENDINGS}."
        )
    for key in ("numTraining", "numTest"):
        if not isinstance(data[key], int) or data[key] < 0:
            raise DatasetJsonError(f"{path}: {key} must be a non-negative integer.")
