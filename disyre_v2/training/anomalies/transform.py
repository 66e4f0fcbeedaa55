"""The anomaly synthesis as a batchgenerators transform, to run after the loader's augmentations.

Input keys: ``data`` (B, C, P, P) float32 in [0, 1], background exactly 0, and ``mask``
(B, 1, P, P) bool/uint8 brain mask. Output: ``data`` = corrupted input x_sc, ``target`` = clean x0,
``t`` (B,) int64, ``anomaly_mask`` (B, 1, P, P) float32 soft, ``alpha_text`` (B,) and
``alpha_bias`` (B, C) effective. Other keys pass through. The transform owns a seeded numpy
Generator (a loader passes one seed per worker) and is picklable. Rectangular H×W patches work too,
as long as the canvas fits the shorter side.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

from batchgenerators.transforms.abstract_transforms import AbstractTransform

from disyre_v2.training.anomalies.config import AnomalySynthesisConfig
from disyre_v2.training.anomalies.synthesis import AnomalySynthesizer
from disyre_v2.training.schedule import SeverityScheduler


class ForeignPatchCacheState:
    """state_dict / load_state_dict of a transform whose ``synthesizer`` keeps a foreign-patch ``cache``:
    what a resumed run needs besides the seed (the cache's crops, as a torch tensor)."""

    synthesizer: object

    def state_dict(self) -> dict:
        crops = self.synthesizer.cache.state_dict()["crops"]
        return {"cache_crops": None if crops is None else torch.from_numpy(crops)}

    def load_state_dict(self, state: dict) -> None:
        crops = state.get("cache_crops")
        self.synthesizer.cache.load_state_dict({"crops": None if crops is None else crops.cpu().numpy()})


class AnomalySynthesisTransform(ForeignPatchCacheState, AbstractTransform):
    def __init__(self, config: AnomalySynthesisConfig, seed: int | None = None,
                 scheduler: SeverityScheduler | None = None, library_seed: int | None = None,
                 data_key: str = "data", mask_key: str = "mask", target_key: str = "target"):
        self.synthesizer = AnomalySynthesizer(config, scheduler, seed=seed, library_seed=library_seed)
        self.data_key, self.mask_key, self.target_key = data_key, mask_key, target_key

    @classmethod
    def from_plans(cls, configuration: Mapping, seed: int | None = None, mode: str | None = None,
                   **kwargs) -> "AnomalySynthesisTransform":
        """From one configuration of plans.json (its anomaly_synthesis, tissue_centroids, schedule)."""
        config = AnomalySynthesisConfig.from_plans(
            configuration["anomaly_synthesis"], configuration.get("tissue_centroids"), mode=mode)
        scheduler = SeverityScheduler.from_dict(configuration["schedule"]) if "schedule" in configuration else None
        return cls(config, seed=seed, scheduler=scheduler, **kwargs)

    def reseed(self, seed: int | np.random.SeedSequence | None) -> None:
        """Restart the random stream from ``seed`` (the foreign-patch cache is kept).

        A transform pickled into several workers carries the same generator state to each; give every
        worker (or every batch) its own seed, here or at construction, so their anomalies differ.
        """
        self.synthesizer.reseed(seed)


    @property
    def config(self) -> AnomalySynthesisConfig:
        return self.synthesizer.config

    def __call__(self, **data_dict):
        for key in (self.data_key, self.mask_key):
            if key not in data_dict:
                raise KeyError(f"{type(self).__name__}: the batch has no {key!r} entry "
                               f"(keys: {sorted(data_dict)}); the loader must provide it")
        result = self.synthesizer(data_dict[self.data_key], data_dict[self.mask_key])
        data_dict[self.data_key] = result.corrupted
        data_dict[self.target_key] = result.target
        data_dict["t"] = result.level
        data_dict["anomaly_mask"] = result.anomaly_mask
        data_dict["alpha_text"] = result.alpha_text
        data_dict["alpha_bias"] = result.alpha_bias
        return data_dict

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mode={self.config.mode!r}, canvas_size={self.config.canvas_size})"
