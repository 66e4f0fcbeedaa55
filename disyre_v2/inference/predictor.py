"""DisyrePredictor: anomaly maps of whole 3D volumes (method_numbers.md ("Inference and the anomaly score")).

Each test case is preprocessed in memory with the plans (the code that built the training data),
its slices are scored with Gaussian-weighted sliding windows by every model (folds × seeds), the
maps are averaged, multiplied by the brain mask and mapped back to the input grid.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from disyre_v2.errors import UserError
from disyre_v2.imageio.geometry import Geometry
from disyre_v2.inference.compilation import CompiledNetwork
from disyre_v2.inference.latent_restoration import RestorationSettings, restoration_score
from disyre_v2.inference.model_loading import LoadedModel, load_models
from disyre_v2.inference.patch_density import patch_density_score
from disyre_v2.inference.onnx_backend import check_backend, onnxruntime_models
from disyre_v2.inference.scores import (
    SCORE_NAMES,
    ensemble_score,
    multistep_levels,
    multistep_score,
    segmentation_score,
    singlestep_score,
    unconditional_score,
)
from disyre_v2.inference.postprocessing import check_median_filter_size, median_filter_map, median_filter_torch
from disyre_v2.training.score_names import EAGER_TORCH_SCORES, LEVEL_SCORES
from disyre_v2.inference.sliding_window import sliding_window_scores
from disyre_v2.planning.plans import get_configuration, load_plans
from disyre_v2.preprocessing.inverse import extend_beyond_mask, restore_to_raw
from disyre_v2.preprocessing.loading import load_case
from disyre_v2.preprocessing.preprocessor import check_channel_count, preprocess_arrays
from disyre_v2.training.schedule import SeverityScheduler

PRECISIONS = ("fp32", "bf16")  # of the network's forward pass; the blending is float32 either way


def check_eager_torch_score(score: str | None, backend: str, compile: bool) -> None:
    """The scores that call parts of the network themselves run in eager torch: --backend onnxruntime
    (which exports the forward pass only, without gradients) and --compile on are refused in one line."""
    if score not in EAGER_TORCH_SCORES:
        return
    if backend != "torch":
        raise UserError(f"--score {score} {EAGER_TORCH_SCORES[score]}, which --backend {backend} cannot give",
                        fix="use --backend torch (the default)")
    if compile:
        raise UserError(f"--score {score} {EAGER_TORCH_SCORES[score]} eagerly; --compile on does not apply to it",
                        fix="leave --compile at auto or off")


class DisyrePredictor:
    restoration = RestorationSettings()  # --score restoration (r-VAE): K, step, λ of the UPD benchmark

    def __init__(self, plans: dict, configuration: str, models: Sequence[LoadedModel], *, score: str | None = None,
                 levels: Sequence[int] | None = None, tile_step: float | None = None, batch_windows: int | None = None,
                 multistep_step: int = 25, device: torch.device | str = "cpu", compile: bool | None = None,
                 precision: str | None = None, median_filter_size: int | None = None, backend: str = "torch"):
        if not models:
            raise ValueError("DisyrePredictor needs at least one model.")
        score = score or models[0].scores[0]  # the trainer's own score by default
        if score not in SCORE_NAMES:
            raise ValueError(f"Unknown score {score!r}; choose one of {', '.join(SCORE_NAMES)}.")
        self.plans = plans
        self.configuration_name = configuration
        self.configuration = get_configuration(plans, configuration)
        inference = self.configuration["inference"]
        self.models = list(models)
        self.score = score
        self.levels = [int(t) for t in (levels if levels is not None else inference["ensemble_levels"])]
        self.tile_step = float(tile_step if tile_step is not None else inference["tile_step"])
        self.sigma_scale = float(inference.get("gaussian_sigma_scale", 0.125))
        self.min_weight = float(inference.get("gaussian_min", 1e-3))
        self.foreground_weighting = bool(inference.get("foreground_weighting", True))
        # --median_filter, else the plans'; checked now, before any case is scored. 1 is off like 0.
        self.median_filter_size = check_median_filter_size(
            median_filter_size if median_filter_size is not None else inference.get("median_filter_size", 0),
            "--median_filter" if median_filter_size is not None else "plans.json inference.median_filter_size")
        if self.median_filter_size == 1:
            self.median_filter_size = 0
        self.multistep_step = int(multistep_step)
        self.device = torch.device(device)
        # Default bf16 autocast on CUDA (the speed measure), fp32 elsewhere: on the synthetic benchmark bf16
        # left AP, Dice and volume AUROC unchanged to 3 decimals (documentation/explanation/performance.md,
        # "Inference precision"); a CPU without bf16 units runs it slower than fp32.
        # --score restoration: fp32 by default everywhere (500 gradient steps on small residuals).
        precision = precision if precision is not None else (
            "bf16" if self.device.type == "cuda" and score != "restoration" else "fp32")
        if precision not in PRECISIONS:
            raise ValueError(f"Unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}.")
        self.precision = precision
        # torch.compile by default on CUDA (2.7x the eager throughput measured on an H200 in issue 13),
        # with batches of one fixed shape; eager on CPU, where compilation costs more than it saves.
        self.compile = (self.device.type == "cuda" and score not in EAGER_TORCH_SCORES
                        ) if compile is None else bool(compile)
        self._networks: dict[int, object] = {}
        # --backend onnxruntime: the same networks exported to ONNX and run by onnxruntime (CPU, fp32).
        check_eager_torch_score(score, backend, self.compile)
        check_backend(backend, self.device, self.precision, self.compile)
        self.backend = backend
        if backend == "onnxruntime":
            self.models = onnxruntime_models(self.models, self.configuration["patch_size"])
        self.batch_windows = int(batch_windows) if batch_windows else self.default_batch_windows()
        self.scheduler = SeverityScheduler.from_dict(self.configuration["schedule"])
        self.patch = tuple(self.configuration["patch_size"])
        self.slice_axis = int(self.configuration.get("slice_axis", 0))
        for model in self.models:
            if score in model.scores:
                continue
            if {score, *model.scores} <= {*LEVEL_SCORES, "unconditional"}:
                kind = "without" if score == "unconditional" else "with"
                raise ValueError(
                    f"--score {score} needs models trained {kind} the level input, but {model.run_folder} "
                    f"{'is' if model.conditional else 'is not'} conditional. Use --score {model.scores[0]}.")
            raise ValueError(f"--score {score} does not fit the model {model.run_folder}, whose trainer's scores are "
                             f"{', '.join(model.scores)}. Use --score {model.scores[0]} (or leave --score out).")
        if score == "singlestep" and len(self.levels) != 1:
            raise ValueError(f"--score singlestep takes exactly one level (--levels t), got {self.levels}.")
        bad = [t for t in self.levels if not 0 <= t < self.scheduler.num_levels]
        if bad:
            raise ValueError(f"levels {bad} are outside 0..{self.scheduler.num_levels - 1}.")

    def describe(self) -> dict:
        """What each map's sidecar records: the score, its levels (where it has any) and the models."""
        levels = self.levels if self.score in ("ensemble", "singlestep") else (
            multistep_levels(self.scheduler.num_levels, self.multistep_step) if self.score == "multistep" else [])
        return {"score": self.score, "levels": levels, "models": [str(m.run_folder) for m in self.models],
                "median_filter_size": self.median_filter_size,
                "precision": self.precision, **({"backend": self.backend} if self.backend != "torch" else {}),
                **({"restoration": self.restoration.describe()} if self.score == "restoration" else {})}

    def default_batch_windows(self) -> int:
        """Windows per forward pass. On CPU about 32 samples per pass (windows × levels) is fastest
        (measured: 73 samples/s at 32, 36 at 256 for 2d_small); GPUs want large batches."""
        per_window = len(self.levels) if self.score in ("ensemble", "singlestep") else 1
        if self.device.type == "cuda":
            return max(256 // per_window, 1)
        return max(32 // per_window, 1)

    @classmethod
    def from_model_folder(cls, model_folder: Path | str, configuration: str | None = None,
                          folds: Sequence[str | int] | None = None, seeds: Sequence[int] | None = None,
                          checkpoint: str = "final", device: str = "cpu", **kwargs) -> "DisyrePredictor":
        """From ``$DISYRE_results/DatasetNNN_Name/<Trainer>__<plans>__<configuration>``."""
        model_folder = Path(model_folder)
        plans = load_plans(model_folder / "plans.json")
        configuration = configuration or model_folder.name.split("__")[-1]
        models = load_models(model_folder, configuration, folds, seeds, checkpoint, device)
        return cls(plans, configuration, models, device=device, **kwargs)

    # -- scoring on the preprocessed grid --------------------------------------------------
    def _network(self, network: torch.nn.Module):
        if not self.compile:
            return network
        if id(network) not in self._networks:
            self._networks[id(network)] = CompiledNetwork(network, channels_last=self.device.type == "cuda")
        return self._networks[id(network)]

    def _autocast(self):
        """bf16 autocast on any device with --precision bf16, else nothing."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16) if self.precision == "bf16" else nullcontext()

    def _score_function(self, network: torch.nn.Module, per_level: bool = False):
        if self.score == "restoration":  # the VAE's encode and decode, with gradients
            return restoration_score(network, self.restoration, autocast=self._autocast)
        if self.score == "patch_density":  # CutPaste: Mahalanobis distance of sub-patch features
            return patch_density_score(network, autocast=self._autocast)
        network = self._network(network)

        def run(x, t):
            # bf16 autocast on any device (torch.autocast("cpu") as well as "cuda"); fp32 runs plainly.
            with torch.autocast(self.device.type, dtype=torch.bfloat16) if self.precision == "bf16" else nullcontext():
                return network(x, t)

        if self.score == "ensemble":
            return ensemble_score(run, self.levels, per_level=per_level)
        if self.score == "singlestep":
            return singlestep_score(run, self.levels[0])
        if self.score == "multistep":
            return multistep_score(run, self.scheduler, self.multistep_step)
        if self.score == "segmentation":
            return segmentation_score(run)
        return unconditional_score(run)  # unconditional, residual

    @torch.inference_mode()
    def predict_preprocessed(self, data: np.ndarray, mask: np.ndarray, with_restoration: bool = False,
                             filtered: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """Score map (Z, Y, X) and optionally the restoration (C, Z, Y, X) of a preprocessed volume.

        ``filtered=False`` leaves out the median filter (``postprocess`` applies it), so that a
        caller can run that CPU step elsewhere, e.g. in a background process."""
        anomaly_map, restored, _ = self.score_volume(data, mask, with_restoration, filtered)
        return anomaly_map, restored

    @torch.inference_mode()
    def score_volume(self, data: np.ndarray, mask: np.ndarray, with_restoration: bool = False,
                     filtered: bool = True, with_uncertainty: bool = False
                     ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """``predict_preprocessed`` and, with ``with_uncertainty``, the spread of what the map averages:
        per voxel the standard deviation (over the terms, not of their mean) of every model's map, and
        for the ensemble score of every level's map of every model (unfiltered, 0 outside the brain)."""
        slices = torch.from_numpy(np.moveaxis(data, self.slice_axis + 1, 0).copy()).to(self.device)  # (N, C, H, W)
        brain = torch.from_numpy(np.moveaxis(mask, self.slice_axis, 0).copy()).to(self.device)
        per_level = with_uncertainty and self.score == "ensemble"
        total_map, total_restoration, term_sum, term_squares, terms = None, None, None, None, 0
        for model in self.models:
            scores, restoration = sliding_window_scores(
                slices, brain, self._score_function(model.network, per_level), self.patch,
                step_fraction=self.tile_step, batch_windows=self.batch_windows, sigma_scale=self.sigma_scale,
                min_weight=self.min_weight, with_restoration=with_restoration, output_device=self.device,
                foreground_weighting=self.foreground_weighting, fixed_batch=self.compile,
                score_terms=1 + len(self.levels) if per_level else 0)
            if with_uncertainty:
                parts = scores[:, 1:] if per_level else scores[:, None]  # (N, K, H, W): the averaged terms
                scores = scores[:, 0] if per_level else scores
                term_sum = parts.double().sum(1) + (0 if term_sum is None else term_sum)
                term_squares = parts.double().square().sum(1) + (0 if term_squares is None else term_squares)
                terms += parts.shape[1]
            total_map = scores if total_map is None else total_map + scores
            if with_restoration:
                total_restoration = restoration if total_restoration is None else total_restoration + restoration
        uncertainty = None
        if with_uncertainty:
            mean = term_sum / terms
            spread = (term_squares / terms - mean.square()).clamp_min(0).sqrt().float() * brain.to(torch.bool)
            uncertainty = np.moveaxis(spread.cpu().numpy(), 0, self.slice_axis).astype(np.float32)
        anomaly = (total_map / len(self.models)).float() * brain.to(torch.bool)
        if filtered and self.filters_on_device and self.median_filter_size > 1:
            # On the accelerator, before the map leaves it; the cube is symmetric, so the slice-first
            # order does not matter.
            anomaly = median_filter_torch(anomaly, brain, self.median_filter_size)
        anomaly_map = np.moveaxis(anomaly.cpu().numpy(), 0, self.slice_axis)
        if filtered and not self.filters_on_device:
            anomaly_map = self.postprocess(anomaly_map, mask)
        restored = None
        if with_restoration:
            restored = np.moveaxis((total_restoration / len(self.models)).cpu().numpy(), 0, self.slice_axis + 1)
        return anomaly_map.astype(np.float32), restored, uncertainty

    @property
    def filters_on_device(self) -> bool:
        """Whether the median filter runs in torch on this predictor's accelerator (inside
        ``predict_preprocessed``). On the CPU scipy is faster than torch (documentation/explanation/
        performance.md, "Median filter cost"), so it runs there at export, in -np's workers if any."""
        return self.device.type != "cpu"

    def postprocess(self, anomaly_map: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The median filter (``median_filter_size``) of a map on the preprocessed grid, on this device."""
        return median_filter_map(anomaly_map, mask, self.median_filter_size, self.device)

    # -- whole cases on their own grid -----------------------------------------------------
    def prepare_case(self, image_paths: Sequence[Path | str], mask_path: Path | str | None = None) -> PreparedCase:
        """Read and preprocess one case (CPU only; what the CLI's background workers run)."""
        return prepare_case(self.plans, self.configuration, image_paths, mask_path)

    def score_prepared(self, case: PreparedCase, with_restoration: bool = False
                       ) -> tuple[np.ndarray, np.ndarray | None, dict]:
        """Score a prepared case and bring the map back to its input grid."""
        anomaly_map, restoration = self.predict_preprocessed(case.data, case.mask, with_restoration)
        return export_case(anomaly_map, restoration, case)

    def predict_case(self, image_paths: Sequence[Path | str], mask_path: Path | str | None = None,
                     with_restoration: bool = False) -> tuple[np.ndarray, np.ndarray | None, dict]:
        """Anomaly map on the input grid (float32 Z, Y, X), restoration (C, Z, Y, X) or None, properties.

        The brain is the mask file, or any channel > 0 without one; the map is 0 exactly outside it."""
        return self.score_prepared(self.prepare_case(image_paths, mask_path), with_restoration)

    def predict_array(self, image: np.ndarray, geometry: Geometry, mask: np.ndarray | None = None,
                      with_restoration: bool = False, image_paths: Sequence[Path | str] | None = None,
                      ) -> tuple[np.ndarray, np.ndarray | None, dict]:
        """The same for an in-memory case: image (C, Z, Y, X) on ``geometry``; mask default any channel > 0."""
        case = prepare_array(self.configuration, image, geometry, mask, image_paths)
        return self.score_prepared(case, with_restoration)


@dataclass
class PreparedCase:
    """A case ready for the network: preprocessed data (C, Z, Y, X) and brain mask on the plans' grid,
    the input's own brain mask on its grid, and what undoing the preprocessing needs."""

    data: np.ndarray
    mask: np.ndarray
    raw_mask: np.ndarray
    properties: dict


def prepare_case(plans: dict, configuration: dict, image_paths: Sequence[Path | str],
                 mask_path: Path | str | None = None) -> PreparedCase:
    """Read a case's channel files (and mask) and preprocess them with ``configuration``."""
    check_channel_count(image_paths, plans)
    image, brain, geometry = load_case(image_paths, mask_path)
    return prepare_array(configuration, image, geometry, brain, image_paths)


def prepare_array(configuration: dict, image: np.ndarray, geometry: Geometry, mask: np.ndarray | None = None,
                  image_paths: Sequence[Path | str] | None = None) -> PreparedCase:
    image = np.asarray(image, np.float32)
    if image.ndim == 3:
        image = image[None]
    if image.shape[1:] != geometry.shape_zyx:
        raise ValueError(f"image of shape {image.shape} does not fit the grid {geometry.shape_zyx}.")
    brain = (image > 0).any(0) if mask is None else np.asarray(mask, bool)
    if not brain.any():
        raise ValueError("the brain mask of the in-memory case is empty.")
    data, brain_pre, properties = preprocess_arrays(image, brain, geometry, configuration, image_paths)
    if image_paths is not None:
        properties["image_paths"] = [str(p) for p in image_paths]
    return PreparedCase(data, brain_pre, brain, properties)


def export_case(anomaly_map: np.ndarray, restoration: np.ndarray | None, case: PreparedCase
                ) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """Map and restoration on the input grid, masked with the input's own brain mask (CPU only).

    Where preprocessing resampled, a brain voxel of the input may fall just outside the brain of
    the preprocessed grid: the map is first extended beyond that brain by its nearest brain value,
    so that every input brain voxel gets a score and none outside the brain does."""
    mask, properties = case.mask, case.properties
    if properties["resampled"]:
        anomaly_map = extend_beyond_mask(anomaly_map, mask)
        restoration = None if restoration is None else np.stack([extend_beyond_mask(c, mask) for c in restoration])
    raw_map = np.maximum(restore_to_raw(anomaly_map, properties, "linear"), 0) * case.raw_mask
    raw_restoration = None
    if restoration is not None:
        raw_restoration = restore_to_raw(restoration, properties, "linear") * case.raw_mask[None]
    properties["raw_mask"] = case.raw_mask
    return raw_map.astype(np.float32), raw_restoration, properties
