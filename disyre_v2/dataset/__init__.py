"""The raw dataset format shared by conversion and planning: dataset.json, case listing, integrity."""
from disyre_v2.dataset.dataset_json import DatasetJsonError, load_dataset_json, write_dataset_json
from disyre_v2.dataset.layout import RawCase, list_raw_cases
from disyre_v2.dataset.integrity import DatasetIntegrityError, verify_dataset_integrity

__all__ = [
    "DatasetIntegrityError",
    "DatasetJsonError",
    "RawCase",
    "list_raw_cases",
    "load_dataset_json",
    "verify_dataset_integrity",
    "write_dataset_json",
]
