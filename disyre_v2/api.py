"""The Python API: anomaly maps of images in memory from a trained or shared model.

    from disyre_v2.api import AnomalyPredictor

    predictor = AnomalyPredictor.from_model_folder("models/brains_2d_small")     # an unzipped export
    anomaly = predictor.predict_image(sitk.ReadImage("case_0000.nii.gz"))        # a SimpleITK image, same grid

``from_dataset`` opens ``$DISYRE_results/DatasetNNN_Name/<trainer>__<plans>__<configuration>`` instead;
``predict_array`` takes a numpy volume (Z, Y, X) or (C, Z, Y, X) with its spacing, origin and direction
(SimpleITK's (x, y, z) order) and returns the map on the same grid. The maps are those of
``disyre_v2_predict`` with the same settings, voxel for voxel. Built on
:class:`disyre_v2.inference.predictor.DisyrePredictor` (``.predictor``), which also reads files.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk

from disyre_v2.errors import UserError
from disyre_v2.imageio.geometry import Geometry, grid_differences
from disyre_v2.inference.predictor import DisyrePredictor
from disyre_v2.model_sharing.local import open_model_folder

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


class AnomalyPredictor:
    """Anomaly maps from one model folder, averaged over its runs (folds × seeds)."""

    def __init__(self, predictor: DisyrePredictor, model_folder: Path):
        self.predictor = predictor
        self.model_folder = model_folder

    @classmethod
    def from_model_folder(cls, path: Path | str, folds: Sequence[str | int] | None = None,
                          seeds: Sequence[int] | None = None, device: str = "cpu", checkpoint: str | None = None,
                          **settings) -> "AnomalyPredictor":
        """A model folder by its path (an installed or unzipped export, or a trained one); no environment
        variable is read. ``settings``: ``score``, ``levels``, ``tile_step``, ``median_filter_size``,
        ``batch_windows``, ``precision``, ``compile`` (as disyre_v2_predict's flags)."""
        folder = open_model_folder(path)
        predictor = DisyrePredictor.from_model_folder(folder.path, folder.configuration, folds, seeds,
                                                      checkpoint or folder.checkpoint, device, **settings)
        return cls(predictor, folder.path)

    @classmethod
    def from_dataset(cls, dataset: str | int, configuration: str, trainer: str = "DisyreTrainer",
                     plans: str = "DisyrePlans", folds: Sequence[str | int] | None = None,
                     seeds: Sequence[int] | None = None, device: str = "cpu", checkpoint: str = "final",
                     **settings) -> "AnomalyPredictor":
        """The model ``$DISYRE_results/DatasetNNN_Name/<trainer>__<plans>__<configuration>``."""
        from disyre_v2.paths import resolve_dataset_name, results_folder

        folder = results_folder() / resolve_dataset_name(dataset) / f"{trainer}__{plans}__{configuration}"
        return cls.from_model_folder(folder, folds, seeds, device, checkpoint, **settings)

    @property
    def channel_names(self) -> list[str]:
        """The input channels, in the order the images must be given."""
        names = self.predictor.plans.get("channel_names", {})
        return [names[k] for k in sorted(names, key=int)] if isinstance(names, dict) else list(names)

    @property
    def configuration(self) -> str:
        return self.predictor.configuration_name

    @property
    def score(self) -> str:
        return self.predictor.score

    def predict_image(self, image: sitk.Image | Sequence[sitk.Image], mask: sitk.Image | None = None) -> sitk.Image:
        """The anomaly map (float32) of one case on its own grid: one image per channel (in the order of
        ``channel_names``); ``mask`` a brain mask (> 0), default any channel > 0."""
        images = [image] if isinstance(image, sitk.Image) else list(image)
        if not images or not all(isinstance(i, sitk.Image) for i in images):
            raise UserError("predict_image takes a SimpleITK image or a list of them, one per channel",
                            fix=f"give {len(self.channel_names)} image(s): {', '.join(self.channel_names)}")
        geometry = Geometry.from_image(images[0])
        for index, other in enumerate(images[1:], 1):
            differences = grid_differences(geometry, Geometry.from_image(other))
            if differences:
                raise UserError(f"channel {index} is on another grid than channel 0 ({'; '.join(differences)})",
                                fix="resample the channels onto one grid")
        volume = np.stack([sitk.GetArrayFromImage(i).astype(np.float32) for i in images])
        mask_array = None
        if mask is not None:
            differences = grid_differences(geometry, Geometry.from_image(mask))
            if differences:
                raise UserError(f"the mask is on another grid than the image ({'; '.join(differences)})",
                                fix="give the mask of this image")
            mask_array = sitk.GetArrayFromImage(mask) > 0
        anomaly = self._predict(volume, geometry, mask_array)
        result = sitk.GetImageFromArray(anomaly)
        result.CopyInformation(images[0])
        return result

    def predict_array(self, volume: np.ndarray, spacing: Sequence[float], origin: Sequence[float] = (0.0, 0.0, 0.0),
                      direction: Sequence[float] = IDENTITY, mask: np.ndarray | None = None) -> np.ndarray:
        """The anomaly map (float32, Z, Y, X) of ``volume`` (Z, Y, X) or (C, Z, Y, X) on the same grid.
        ``spacing``, ``origin`` and ``direction`` (9 cosines) in SimpleITK's (x, y, z) order, as
        ``image.GetSpacing()`` gives them; ``mask`` (Z, Y, X) > 0 is the brain, default any channel > 0."""
        volume = np.asarray(volume, np.float32)
        if volume.ndim == 3:
            volume = volume[None]
        if volume.ndim != 4:
            raise UserError(f"predict_array takes a volume (Z, Y, X) or (C, Z, Y, X), got shape {volume.shape}")
        geometry = Geometry(tuple(float(s) for s in spacing), tuple(float(o) for o in origin),
                            tuple(float(d) for d in direction), tuple(int(n) for n in volume.shape[:0:-1]))
        if len(geometry.spacing) != 3 or len(geometry.origin) != 3 or len(geometry.direction) != 9:
            raise UserError("spacing and origin take 3 numbers and direction 9, in (x, y, z) order")
        mask_array = None
        if mask is not None:
            mask_array = np.asarray(mask) > 0
            if mask_array.shape != volume.shape[1:]:
                raise UserError(f"the mask's shape {mask_array.shape} is not the volume's {volume.shape[1:]}")
        return self._predict(volume, geometry, mask_array)

    def _predict(self, volume: np.ndarray, geometry: Geometry, mask: np.ndarray | None) -> np.ndarray:
        expected = len(self.channel_names)
        if volume.shape[0] != expected:
            raise UserError(f"the model takes {expected} channel(s) ({', '.join(self.channel_names)}), "
                            f"got {volume.shape[0]}", fix="give one image per channel, in that order")
        if not np.isfinite(volume).all():
            raise UserError(f"the image has {int((~np.isfinite(volume)).sum())} NaN or infinite voxel(s)",
                            fix="replace them (e.g. by 0) before predicting")
        anomaly, _, _ = self.predictor.predict_array(volume, geometry, mask)
        return anomaly
