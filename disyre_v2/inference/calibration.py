"""Operating points chosen without lesion labels: the score distributions of healthy scans.

Unsupervised detection has one honest way to pick a threshold for new patients: score held-out
healthy scans with exactly the models and settings that will score the patients, and put the
threshold where a chosen share of healthy voxels exceeds it. ``disyre_v2_calibrate`` writes a
calibration file with

- the healthy voxel scores' *exceedance thresholds*: for each rate r of a log grid from 1e-6 to 0.5
  (40 per decade), the threshold v_r such that at most a fraction r of the healthy brain voxels
  score strictly above v_r (an exact order statistic of the pooled voxels, not an estimate);
- every healthy volume score (mean of a map's top 1 %), for empirical p-values of new volumes;
- the number of scans and voxels, and the settings (models, score, levels, tile step, median
  filter, precision) the figures hold for.

``disyre_v2_predict --binary`` reads the threshold for ``--voxel_fpr`` and the p-value of each
volume score from it, and refuses a calibration made with other settings.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from disyre_v2.dataset.dataset_json import write_json_atomic
from disyre_v2.errors import UserError

logger = logging.getLogger(__name__)

CALIBRATION_FORMAT = "disyre_v2.calibration"
CALIBRATION_VERSION = 1
CALIBRATION_FOLDER = "calibrations"
# Rates of the stored exceedance table: 40 per decade from 1e-6 to 0.5 (the decades' own rates, 1e-2,
# 1e-3, ..., are points of the grid, so their thresholds are exact order statistics).
RATES_PER_DECADE = 40
SMALLEST_RATE_EXPONENT = -6
LARGEST_RATE = 0.5
# A rate r is resolved by the healthy data when at least 10 voxels lie above its threshold (10 / r
# voxels), and a volume p-value needs a few healthy volumes: below these, calibrate warns.
MIN_VOXELS_PER_RATE = 10
MIN_VOLUMES = 5
# Defaults of disyre_v2_predict --binary: --voxel_fpr (chosen by measurement on the synthetic benchmark,
# documentation/how_to/maps_to_decisions.md), --volume_alpha and --min_lesion_ml.
DEFAULT_VOXEL_FPR = 1e-3
DEFAULT_VOLUME_ALPHA = 0.05
DEFAULT_MIN_LESION_ML = 0.0


def rate_grid() -> np.ndarray:
    """The rates of the exceedance table, ascending."""
    steps = -SMALLEST_RATE_EXPONENT * RATES_PER_DECADE
    rates = [float(f"{10.0 ** (SMALLEST_RATE_EXPONENT + i / RATES_PER_DECADE):.12g}") for i in range(steps)]
    return np.asarray([r for r in rates if r < LARGEST_RATE] + [LARGEST_RATE])


def exceedance_thresholds(values: np.ndarray, rates: Sequence[float]) -> np.ndarray:
    """For each rate r, the value v with #{values > v} ≤ floor(r·n): the (floor(r·n)+1)-th largest value.

    Exact on any array: the fraction of ``values`` strictly above the returned threshold never
    exceeds r (ties at the threshold are not counted as exceeding)."""
    values = np.asarray(values, np.float32).ravel()
    n = values.size
    if n == 0:
        raise ValueError("no healthy voxel to calibrate on")
    rates = np.asarray(rates, np.float64)
    if np.any(rates <= 0) or np.any(rates >= 1):
        raise ValueError(f"rates must lie in (0, 1), got {rates.min()}..{rates.max()}")
    ranks = np.minimum(np.floor(rates * n + 1e-9).astype(np.int64), n - 1)  # values allowed above
    deepest = int(ranks.max())
    # Only the top (deepest + 1) values matter: partition them off, then sort that tail descending.
    tail = np.partition(values, n - 1 - deepest)[n - 1 - deepest:]
    tail = np.sort(tail)[::-1]
    return tail[ranks].astype(np.float64)


def volume_p_value(healthy_volume_scores: Sequence[float], score: float) -> float:
    """Empirical p-value of a volume score against the healthy ones: (1 + #{healthy ≥ s}) / (n + 1).

    The conformal p-value: for a healthy volume exchangeable with the calibration volumes,
    P(p ≤ α) ≤ α, so flagging p ≤ α flags at most a fraction α of healthy volumes."""
    healthy = np.asarray(healthy_volume_scores, np.float64)
    return float((1 + np.count_nonzero(healthy >= score)) / (healthy.size + 1))


def calibration_warnings(num_voxels: int, num_volumes: int, rate: float) -> list[str]:
    """What the healthy data cannot support at ``rate`` (empty when they suffice)."""
    warnings = []
    needed = math.ceil(MIN_VOXELS_PER_RATE / rate)
    if num_voxels < needed:
        warnings.append(f"{num_voxels:,} healthy voxels resolve a false-positive rate of {rate:g} poorly: it needs "
                        f"at least {needed:,} ({MIN_VOXELS_PER_RATE} / rate); calibrate on more healthy scans")
    if num_volumes < MIN_VOLUMES:
        warnings.append(f"{num_volumes} healthy volume(s) give coarse volume p-values (the smallest is "
                        f"1/{num_volumes + 1}); calibrate on at least {MIN_VOLUMES}")
    return warnings


def settings_key(settings: dict) -> str:
    """A short name for a settings dictionary (the calibration file's name)."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def settings_differences(expected: dict, found: dict) -> list[str]:
    """``key: calibrated A, now B`` for every setting that differs."""
    keys = sorted(set(expected) | set(found))
    return [f"{k}: calibrated {found.get(k)!r}, now {expected.get(k)!r}" for k in keys if expected.get(k) != found.get(k)]


@dataclass
class Calibration:
    settings: dict
    rates: np.ndarray
    thresholds: np.ndarray
    volume_scores: list[float]
    cases: list[str]
    num_voxels: int
    source: str

    @classmethod
    def from_healthy(cls, settings: dict, voxel_scores: np.ndarray, volume_scores: Sequence[float],
                     cases: Sequence[str], source: str) -> "Calibration":
        rates = rate_grid()
        return cls(settings, rates, exceedance_thresholds(voxel_scores, rates), [float(s) for s in volume_scores],
                   list(cases), int(np.asarray(voxel_scores).size), source)

    @property
    def num_volumes(self) -> int:
        return len(self.volume_scores)

    def voxel_threshold(self, rate: float) -> float:
        """The threshold of the largest tabulated rate not above ``rate`` (a realised rate ≤ ``rate``)."""
        if not 0 < rate < 1:
            raise ValueError(f"a false-positive rate lies in (0, 1), got {rate}")
        usable = np.flatnonzero(self.rates <= rate * (1 + 1e-9))
        if usable.size == 0:
            raise UserError(f"--voxel_fpr {rate:g} is below the calibration's smallest rate {self.rates[0]:g}",
                            fix=f"give --voxel_fpr >= {self.rates[0]:g}")
        return float(self.thresholds[usable[-1]])

    def p_value(self, score: float) -> float:
        return volume_p_value(self.volume_scores, score)

    def to_dict(self) -> dict:
        return {
            "format": CALIBRATION_FORMAT, "version": CALIBRATION_VERSION,
            "settings": self.settings, "source": self.source,
            "num_volumes": self.num_volumes, "num_voxels": self.num_voxels,
            "voxel_exceedance": {"rates": [float(r) for r in self.rates],
                                 "thresholds": [float(t) for t in self.thresholds]},
            "volume_scores": self.volume_scores, "cases": self.cases,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Calibration":
        table = data["voxel_exceedance"]
        return cls(dict(data["settings"]), np.asarray(table["rates"], np.float64),
                   np.asarray(table["thresholds"], np.float64), [float(s) for s in data["volume_scores"]],
                   [str(c) for c in data["cases"]], int(data["num_voxels"]), str(data["source"]))

    def save(self, path: Path | str) -> Path:
        return write_json_atomic(self.to_dict(), path)


def calibration_path(model_folder: Path | str, settings: dict) -> Path:
    """``MODEL_FOLDER/calibrations/calibration_<key>.json``: one file per settings."""
    return Path(model_folder) / CALIBRATION_FOLDER / f"calibration_{settings_key(settings)}.json"


def load_calibration(path: Path | str) -> Calibration:
    """Read and check a calibration file; a missing, damaged or foreign file is a UserError."""
    path = Path(path)
    fix = "run disyre_v2_calibrate again with the settings of this prediction"
    if not path.is_file():
        raise UserError("no calibration file", path, fix)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"the calibration file is damaged ({error.__class__.__name__})", path, fix) from None
    if not isinstance(data, dict) or data.get("format") != CALIBRATION_FORMAT:
        raise UserError("not a disyre_v2 calibration file", path, fix)
    if data.get("version") != CALIBRATION_VERSION:
        raise UserError(f"calibration format version {data.get('version')!r}; this disyre_v2 reads version "
                        f"{CALIBRATION_VERSION}", path, fix)
    try:
        calibration = Calibration.from_dict(data)
    except (KeyError, TypeError, ValueError) as error:
        raise UserError(f"the calibration file is incomplete ({error})", path, fix) from None
    if (calibration.rates.shape != calibration.thresholds.shape or calibration.rates.size == 0
            or not calibration.volume_scores or not np.all(np.isfinite(calibration.thresholds))):
        raise UserError("the calibration file's tables are inconsistent or empty", path, fix)
    return calibration


def find_calibration(model_folder: Path | str, settings: dict) -> Calibration:
    """The calibration of ``model_folder`` made with exactly ``settings``; else a UserError naming the mismatch."""
    path = calibration_path(model_folder, settings)
    if path.is_file():
        calibration = load_calibration(path)
        differences = settings_differences(settings, calibration.settings)
        if differences:
            raise UserError(f"the calibration was made with other settings ({'; '.join(differences)})", path,
                            "run disyre_v2_calibrate again with the settings of this prediction")
        return calibration
    folder = Path(model_folder) / CALIBRATION_FOLDER
    others = sorted(folder.glob("calibration_*.json")) if folder.is_dir() else []
    if not others:
        raise UserError("--binary needs a calibration on healthy scans, but the model has none", folder,
                        "run disyre_v2_calibrate with the same -d/-c/-f/--seeds/--score flags first")
    closest = min(((p, settings_differences(settings, _settings_of(p))) for p in others), key=lambda pd: len(pd[1]))
    raise UserError(f"no calibration matches this prediction's settings; the closest differs in "
                    f"{'; '.join(closest[1])}", closest[0],
                    "run disyre_v2_calibrate with the settings of this prediction, or predict with the calibrated ones")


def _settings_of(path: Path) -> dict:
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")).get("settings", {}))
    except (OSError, ValueError, AttributeError, TypeError):
        return {}
