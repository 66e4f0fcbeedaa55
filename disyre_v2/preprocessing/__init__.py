"""Crop to the brain, normalise, resample; the dataset preprocessor; the inverse for export."""
from disyre_v2.preprocessing.dataset_preprocessor import preprocess
from disyre_v2.preprocessing.inverse import raw_geometry, restore_to_raw
from disyre_v2.preprocessing.loading import load_case
from disyre_v2.preprocessing.normalization import NormalizationError
from disyre_v2.preprocessing.preprocessor import preprocess_arrays, preprocess_case
from disyre_v2.preprocessing.store import list_preprocessed_cases, load_preprocessed_case

__all__ = [
    "NormalizationError",
    "list_preprocessed_cases",
    "load_case",
    "load_preprocessed_case",
    "preprocess",
    "preprocess_arrays",
    "preprocess_case",
    "raw_geometry",
    "restore_to_raw",
]
