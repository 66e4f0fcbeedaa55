"""The preprocessed store of one configuration: CASE.npy, CASE_mask.npy and CASE.json per case.

Files are written under a temporary hidden name and renamed, and CASE.json comes last: a case is
finished exactly when its CASE.json exists (and names the current preprocessing signature), so a
crash never leaves a truncated array that looks complete.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from disyre_v2.dataset.dataset_json import write_json_atomic
from disyre_v2.imageio.atomic import atomic_path, remove_stale_temporaries


def case_files(folder: Path | str, case_id: str) -> tuple[Path, Path, Path]:
    """(CASE.npy, CASE_mask.npy, CASE.json) in ``folder``."""
    folder = Path(folder)
    return folder / f"{case_id}.npy", folder / f"{case_id}_mask.npy", folder / f"{case_id}.json"


def save_npy_atomic(array: np.ndarray, path: Path) -> Path:
    with atomic_path(path, ".npy") as tmp, open(tmp, "wb") as handle:
        np.save(handle, array, allow_pickle=False)
    return path


def save_preprocessed_case(folder: Path | str, case_id: str, data: np.ndarray, mask: np.ndarray, properties: dict) -> None:
    """Write one case; CASE.json last, as the mark of completion."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data_path, mask_path, json_path = case_files(folder, case_id)
    if json_path.exists():
        json_path.unlink()  # the case is incomplete until the new arrays are in place
    save_npy_atomic(np.ascontiguousarray(data, dtype=np.float32), data_path)
    save_npy_atomic(np.ascontiguousarray(mask, dtype=bool), mask_path)
    write_json_atomic({"case_id": case_id, **properties}, json_path)


def npy_shape(path: Path) -> tuple[int, ...] | None:
    """The array shape an .npy file declares, or None when its header is unreadable or the file is
    shorter than that shape needs (a truncated write)."""
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(handle)
            data_start = handle.tell()
    except (OSError, ValueError, EOFError):
        return None
    expected = data_start + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    return tuple(shape) if path.stat().st_size >= expected else None


def is_case_complete(folder: Path | str, case_id: str, signature: str) -> bool:
    """True when all three files exist, CASE.json was written with ``signature`` and both arrays hold
    the shape CASE.json records (a truncated or foreign array is redone, not reused)."""
    data_path, mask_path, json_path = case_files(folder, case_id)
    if not (data_path.is_file() and mask_path.is_file() and json_path.is_file()):
        return False
    try:
        properties = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    if properties.get("preprocessing_signature") != signature:
        return False
    shape = tuple(properties.get("shape_preprocessed", ()))
    data_shape, mask_shape = npy_shape(data_path), npy_shape(mask_path)
    return data_shape is not None and data_shape[1:] == shape and mask_shape == shape


def load_preprocessed_case(folder: Path | str, case_id: str, mmap: bool = False) -> tuple[np.ndarray, np.ndarray, dict]:
    """(data (C, Z, Y, X) float32, mask (Z, Y, X) bool, properties) of one preprocessed case."""
    data_path, mask_path, json_path = case_files(folder, case_id)
    for path in (data_path, mask_path, json_path):
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} does not exist: case {case_id} has not been preprocessed. Run "
                f"disyre_v2_plan_and_preprocess for this dataset and configuration."
            )
    mode = "r" if mmap else None
    data = np.load(data_path, mmap_mode=mode, allow_pickle=False)
    mask = np.load(mask_path, mmap_mode=mode, allow_pickle=False)
    return data, mask, json.loads(json_path.read_text(encoding="utf-8"))


def list_preprocessed_cases(folder: Path | str) -> list[str]:
    """Sorted case ids with a CASE.json in ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.json") if not p.name.startswith("."))


def remove_temporaries(folder: Path | str) -> int:
    """Delete temporary files left by an interrupted run (their writer is gone); returns how many."""
    return len(remove_stale_temporaries(folder))
