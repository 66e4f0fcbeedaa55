"""The trainer's data: the fold's cases, the augmented and corrupted training batches, a fixed
validation set, and batches moved to the training device."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from disyre_v2.errors import UserError
from disyre_v2.training.anomalies.transform import AnomalySynthesisTransform
from disyre_v2.training.augmentation import MaskAndClipTransform, build_augmentation
from disyre_v2.training.data_loader import SliceDataLoader
from disyre_v2.training.data_pipeline import build_batch_generator

VALIDATION_SEED = 20240710  # the same synthetic validation anomalies for every run


class TrainerData:
    """Part of DisyreTrainer: reads its configuration, fold, seed, device, distributed context,
    ``synthesis_mode``, ``num_validation_batches`` and ``extra_batch_keys``."""

    def split(self) -> tuple[list[str], list[str]]:
        """Training and validation cases of this fold from splits_final.json ('all': every case, both)."""
        path = self.preprocessed_dataset_folder / "splits_final.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: run disyre_v2_plan_and_preprocess first.")
        try:
            splits = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise UserError(f"splits_final.json is not valid JSON ({error})", path,
                            "fix it, or delete it and re-run disyre_v2_plan_and_preprocess to recreate it") from None
        if str(self.fold) == "all":
            cases = sorted(set(splits[0]["train"]) | set(splits[0]["val"]))
            train, val = cases, cases
        else:
            fold = int(self.fold)
            if not 0 <= fold < len(splits):
                raise ValueError(f"Fold {fold} does not exist: {path} has folds 0..{len(splits) - 1} (or use 'all').")
            train, val = list(splits[fold]["train"]), list(splits[fold]["val"])
        self._check_split_cases(path, set(train) | set(val))
        return train, val

    def _check_split_cases(self, path: Path, cases: set[str]) -> None:
        """Every case of the split must be a training case of the dataset (the fingerprint lists them)."""
        fingerprint = self.preprocessed_dataset_folder / "dataset_fingerprint.json"
        if not fingerprint.is_file():
            return
        unknown = sorted(cases - set(json.loads(fingerprint.read_text())["case_ids"]))
        if unknown:
            raise UserError(f"splits_final.json names case(s) {', '.join(unknown[:5])} that are not training cases "
                            f"of this dataset", path, "fix the file, or delete it and re-run "
                            "disyre_v2_plan_and_preprocess to recreate it from the training cases")

    def synthesis_transform(self, seed: int) -> AnomalySynthesisTransform:
        """The corruption of the clean slices (x0 → x_sc, t), last of the batch transforms."""
        return AnomalySynthesisTransform.from_plans(self.configuration, seed=seed, mode=self.synthesis_mode)

    def target_transforms(self) -> list:
        """Transforms after the corruption that derive what the loss needs (none for a restoration)."""
        return []

    def build_data_pipeline(self) -> None:
        train_cases, val_cases = self.split()
        data_folder = self.preprocessed_dataset_folder / self.configuration["data_identifier"]
        patch = self.configuration["patch_size"]
        batch = self.configuration["batch"]
        self.train_loader = SliceDataLoader(
            data_folder, train_cases, patch, batch["n_volumes"], batch["n_slices"], seed=self.seed, fold=self.fold,
            rank=self.distributed.rank, slice_axis=self.configuration.get("slice_axis", 0),
            crop_mode=batch.get("crop_mode", "slice_brain_box"))
        self.train_synthesis = self.synthesis_transform(self.seed)
        transforms = (build_augmentation(self.configuration["augmentation"], patch) + [self.train_synthesis]
                      + self.target_transforms())
        workers = 0 if self.deterministic else None
        self.train_batches = build_batch_generator(self.train_loader, transforms, workers,
                                                   pin_memory=self.device.type == "cuda")
        self.validation_set = self._fixed_validation_set(data_folder, val_cases)

    def _fixed_validation_set(self, data_folder: Path, cases: list[str]) -> list[dict]:
        """Held-out slices with synthetic anomalies drawn from a fixed seed: comparable across runs."""
        batch = self.configuration["batch"]
        loader = SliceDataLoader(data_folder, cases, self.configuration["patch_size"], batch["n_volumes"],
                                 batch["n_slices"], seed=VALIDATION_SEED, fold=0)
        # Validation slices are not augmented: only masked and clipped, then corrupted.
        transforms = [MaskAndClipTransform(), self.synthesis_transform(VALIDATION_SEED)] + self.target_transforms()
        generator = build_batch_generator(loader, transforms, num_workers=0)
        return [self._to_tensors(next(generator)) for _ in range(self.num_validation_batches)]

    def _to_tensors(self, batch: dict) -> dict:
        """The batch on the training device. On CUDA the arrays are pinned first, so the copies are
        truly asynchronous and overlap with the previous step's kernels."""
        cuda = self.device.type == "cuda"

        def move(array, dtype=None) -> torch.Tensor:
            tensor = torch.as_tensor(array, dtype=dtype)
            if cuda:
                tensor = tensor.pin_memory()
            return tensor.to(self.device, non_blocking=cuda)

        tensors = {"data": move(batch["data"]), "target": move(batch["target"]),
                   "t": move(batch["t"], torch.long), "mask": move(batch["mask"])}
        tensors.update({key: move(batch[key]) for key in self.extra_batch_keys})
        return tensors

    def _stop_workers(self) -> None:
        finish = getattr(self.train_batches, "_finish", None)
        if finish is not None:
            finish()
