"""Model-free intensity baselines, scored like a model's maps (documentation/explanation/comparison.md).

Meissen et al. ("Challenging current semi-supervised anomaly segmentation methods for brain MRI",
2021) showed that thresholding the intensity of one channel beats many learned methods on
hyperintense lesions; every comparison table should carry such a floor. Two scores, no training:

- ``intensity``: one channel's normalised intensity x_c (``direction`` bright: lesions brighter than
  tissue, e.g. T2/FLAIR), or max(1 − x_c, 0) (dark: e.g. stroke on T1).
- ``joint_histogram``: novelty of a voxel's intensities over all channels together, −log p(x), with
  p the Gaussian-smoothed (σ = 1 bin) histogram of the brain voxels of every healthy training case
  (64 bins per channel over [0, 1.5] for two channels; values above fall in the last bin).

Cases go through the plans' preprocessing (resampling, cropping, normalisation by the 98th brain
percentile) without its clip to [0, 1], so bright voxels keep their order, and through the plans'
median filter, like every model's map.
"""
from __future__ import annotations

import copy
import json
import logging
import zipfile
from pathlib import Path

import numpy as np
from scipy import ndimage
from tqdm import tqdm

from disyre_v2.dataset.dataset_json import load_dataset_json
from disyre_v2.dataset.layout import list_raw_cases
from disyre_v2.errors import UserError
from disyre_v2.imageio.atomic import atomic_path, remove_stale_temporaries
from disyre_v2.inference.postprocessing import check_median_filter_size, median_filter_map
from disyre_v2.inference.predictor import prepare_case
from disyre_v2.training.score_names import MODEL_FREE_SCORES
from disyre_v2.planning.plans import get_configuration

logger = logging.getLogger(__name__)

DIRECTIONS = ("bright", "dark")
HISTOGRAM_RANGE = 1.5  # upper edge in units of the 98th brain percentile
HISTOGRAM_SMOOTHING = 1.0  # σ in bins
_BINS_PER_CHANNEL = {1: 256, 2: 64, 3: 16}
HISTOGRAM_FILE = "joint_histogram.npz"


def bins_per_channel(channels: int) -> int:
    """Bins per axis: about 4,096–65,536 cells in all, so that each stays populated."""
    return _BINS_PER_CHANNEL.get(channels, 8)


def unclipped(configuration: dict) -> dict:
    """The configuration with normalisation's upper clip lifted (the lower bound, 0, is kept)."""
    configuration = copy.deepcopy(configuration)
    low = configuration["normalization"]["clip"][0]
    configuration["normalization"]["clip"] = [low, float(np.finfo(np.float32).max)]
    return configuration


def intensity_map(data: np.ndarray, channel: int, direction: str) -> np.ndarray:
    """(Z, Y, X) map of one channel of preprocessed (C, Z, Y, X) data: x_c (bright) or max(1 − x_c, 0) (dark)."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    values = np.asarray(data[channel], np.float32)
    return values if direction == "bright" else np.maximum(1.0 - values, 0.0)


class JointHistogram:
    """Smoothed density of healthy brain intensities over all channels; score −log p."""

    def __init__(self, channels: int, bins: int | None = None, upper: float = HISTOGRAM_RANGE):
        self.channels, self.upper = int(channels), float(upper)
        self.bins = int(bins or bins_per_channel(self.channels))
        self.counts = np.zeros((self.bins,) * self.channels, np.float64)
        self._density: np.ndarray | None = None  # of the counts so far; computed once, not per case

    def _cells(self, values: np.ndarray) -> tuple[np.ndarray, ...]:
        """Bin index per channel of (C, N) values; below 0 → first bin, at or above ``upper`` → last."""
        index = np.floor(np.asarray(values, np.float64) * (self.bins / self.upper)).astype(np.int64)
        return tuple(np.clip(index, 0, self.bins - 1))

    def add(self, data: np.ndarray, mask: np.ndarray) -> None:
        """Count the brain voxels of preprocessed (C, Z, Y, X) data."""
        np.add.at(self.counts, self._cells(np.asarray(data)[:, np.asarray(mask, bool)]), 1)
        self._density = None

    def density(self) -> np.ndarray:
        if self._density is None:
            if not self.counts.any():
                raise ValueError("the joint histogram is empty: no healthy brain voxel was counted")
            smooth = ndimage.gaussian_filter(self.counts, HISTOGRAM_SMOOTHING, mode="constant")
            self._density = smooth / smooth.sum()
        return self._density

    def score(self, data: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """−log p(x) of every voxel of (C, Z, Y, X) data ((Z, Y, X), 0 outside ``mask`` if given)."""
        data = np.asarray(data, np.float32)
        novelty = -np.log(self.density()[self._cells(data.reshape(len(data), -1))] + 1e-12).reshape(data.shape[1:])
        return novelty if mask is None else novelty * np.asarray(mask, bool)

    def save(self, path: Path, source: dict) -> None:
        with atomic_path(path) as temporary:
            with open(temporary, "wb") as handle:
                np.savez(handle, counts=self.counts, upper=self.upper, source=json.dumps(source, sort_keys=True))

    @classmethod
    def load(cls, path: Path, source: dict) -> "JointHistogram | None":
        """The histogram stored at ``path`` if it was fitted from ``source`` and is readable, else None."""
        try:
            with np.load(path, allow_pickle=False) as stored:
                if str(stored["source"]) != json.dumps(source, sort_keys=True):
                    return None
                counts, upper = stored["counts"], float(stored["upper"])
        except (OSError, KeyError, ValueError, zipfile.BadZipFile):
            return None  # unreadable (e.g. damaged by hand): fitted again and rewritten
        histogram = cls(counts.ndim, counts.shape[0], upper)
        histogram.counts = counts
        return histogram


def fit_joint_histogram(plans: dict, configuration: dict, raw_dataset: Path, cache_folder: Path | None = None,
                        progress: bool = True) -> JointHistogram:
    """The joint histogram of the healthy training cases (imagesTr, masksTr) of ``raw_dataset``,
    preprocessed with ``configuration`` (unclipped). Stored in ``cache_folder``/joint_histogram.npz
    and reused while the cases and the configuration stay the same."""
    cases = list_raw_cases(raw_dataset, "Tr", load_dataset_json(raw_dataset))
    if not cases:
        raise UserError("the dataset has no training case to fit the joint histogram on", raw_dataset / "imagesTr",
                        "convert the healthy training cases into imagesTr first")
    source = {"cases": [c.case_id for c in cases], "configuration": configuration}
    cache = cache_folder / HISTOGRAM_FILE if cache_folder is not None else None
    if cache is not None and cache.is_file():
        stored = JointHistogram.load(cache, source)
        if stored is not None:
            logger.info("Joint histogram from %s.", cache)
            return stored
    histogram = JointHistogram(len(plans["channel_names"]))
    for case in tqdm(cases, desc="joint histogram of the training cases", unit="case", disable=not progress):
        prepared = prepare_case(plans, configuration, case.image_paths, case.mask_path)
        histogram.add(prepared.data, prepared.mask)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(cache.parent)  # a save a killed run left half-written
        histogram.save(cache, source)
        logger.info("Joint histogram of %d training cases written to %s.", len(cases), cache)
    return histogram


def channel_index(plans: dict, channel: str | int | None) -> int:
    """The index of ``channel`` (its name in dataset.json, or its number); the only one when None."""
    names = {int(k): v for k, v in plans["channel_names"].items()}
    if channel is None:
        if len(names) == 1:
            return 0
        raise UserError(f"--score intensity needs --channel: the dataset has {len(names)} channels "
                        f"({', '.join(f'{k}: {v}' for k, v in sorted(names.items()))})",
                        fix="give --channel NAME (or its number) and --direction bright|dark")
    for index, name in names.items():
        if str(channel) in (name, str(index)):
            return index
    raise UserError(f"--channel {channel} is not a channel of the dataset "
                    f"({', '.join(f'{k}: {v}' for k, v in sorted(names.items()))})", fix="give one of these names or numbers")


class ModelFreePredictor:
    """The predictor interface of :func:`predict_folder` for the intensity baselines (no models)."""

    filters_on_device = False  # CPU only: the median filter runs with scipy at export

    def __init__(self, plans: dict, configuration: str, score: str, *, channel: str | int | None = None,
                 direction: str = "bright", histogram: JointHistogram | None = None,
                 median_filter_size: int | None = None):
        if score not in MODEL_FREE_SCORES:
            raise ValueError(f"Unknown model-free score {score!r}; choose one of {', '.join(MODEL_FREE_SCORES)}.")
        if score == "joint_histogram" and histogram is None:
            raise ValueError("--score joint_histogram needs the histogram of the healthy training cases")
        if direction not in DIRECTIONS:
            raise ValueError(f"--direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
        self.plans = plans
        self.configuration_name = configuration
        self.configuration = unclipped(get_configuration(plans, configuration))
        self.score = score
        self.channel = channel_index(plans, channel) if score == "intensity" else None
        self.direction = direction
        self.histogram = histogram
        # --median_filter, else the plans' (like a model's map); 1 is off like 0.
        self.median_filter_size = check_median_filter_size(
            median_filter_size if median_filter_size is not None
            else self.configuration["inference"].get("median_filter_size", 0),
            "--median_filter" if median_filter_size is not None else "plans.json inference.median_filter_size")
        if self.median_filter_size == 1:
            self.median_filter_size = 0

    def describe(self) -> dict:
        """What each map's sidecar records."""
        if self.score == "intensity":
            return {"score": self.score, "channel": self.channel, "direction": self.direction, "models": [],
                    "median_filter_size": self.median_filter_size}
        return {"score": self.score, "bins_per_channel": self.histogram.bins, "models": [],
                "median_filter_size": self.median_filter_size}

    def predict_preprocessed(self, data: np.ndarray, mask: np.ndarray, with_restoration: bool = False,
                             filtered: bool = True) -> tuple[np.ndarray, None]:
        if with_restoration:
            raise ValueError(f"--score {self.score} restores nothing: leave out --save_restorations")
        if self.score == "intensity":
            anomaly_map = intensity_map(data, self.channel, self.direction)
        else:
            anomaly_map = self.histogram.score(data)
        anomaly_map = (anomaly_map * np.asarray(mask, bool)).astype(np.float32)
        return (self.postprocess(anomaly_map, mask) if filtered else anomaly_map), None

    def postprocess(self, anomaly_map: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return median_filter_map(anomaly_map, mask, self.median_filter_size)


def model_free_predictor(plans: dict, configuration: str, score: str, raw_dataset: Path,
                         cache_folder: Path | None, channel: str | int | None = None,
                         direction: str = "bright", median_filter_size: int | None = None) -> ModelFreePredictor:
    """A ModelFreePredictor, fitting (or reading) the joint histogram when ``score`` needs it."""
    histogram = None
    if score == "joint_histogram":
        histogram = fit_joint_histogram(plans, unclipped(get_configuration(plans, configuration)), raw_dataset,
                                        cache_folder)
    return ModelFreePredictor(plans, configuration, score, channel=channel, direction=direction, histogram=histogram,
                              median_filter_size=median_filter_size)
