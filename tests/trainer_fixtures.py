"""A tiny planned and preprocessed dataset for the trainer, predictor and distributed tests."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from disyre_v2.planning.plan_and_preprocess_api import plan_and_preprocess
from disyre_v2.training.run_training import train
from tests.planning_test_data import write_raw_dataset

# Small enough for a CPU step in well under a second: 2 volumes x 2 slices of 16 x 16.
TINY_TRAINING = {"n_volumes": 2, "n_slices": 2}


def make_preprocessed_dataset(root: Path, channels=("T1",), n_train: int = 5, n_test: int = 2) -> str:
    """Raw → preprocessed ``Dataset001_Tiny`` under ``root`` (env vars must point there); returns its name."""
    write_raw_dataset(root / "raw", 1, "Tiny", n_train=n_train, n_test=n_test, channels=channels,
                      shape=(10, 20, 18), spacing=(2.0, 2.0, 2.0))
    out = plan_and_preprocess(1, ["2d_small"], progress=False)
    plans_path = out / "plans.json"
    plans = json.loads(plans_path.read_text())
    config = plans["configurations"]["2d_small"]
    config["batch"] = dict(TINY_TRAINING)
    config["network"]["kwargs"]["widths"] = [8, 16]
    config["network"]["kwargs"]["attention_levels"] = [1]
    config["network"]["kwargs"]["norm_groups"] = 4
    config["patch_size"] = [16, 16]
    config["anomaly_synthesis"]["foreign_patch_cache_size"] = 4
    config["training"]["warmup_steps"] = 2
    plans_path.write_text(json.dumps(plans, indent=2))  # editing plans by hand is supported
    return out.name


def point_environment_at(patch, root: Path, results: Path | None = None) -> None:
    """DISYRE_raw/_preprocessed/_results at ``root``'s raw, pre and res folders (``results``
    instead of res when given), with in-process augmentation."""
    patch.setenv("DISYRE_raw", str(root / "raw"))
    patch.setenv("DISYRE_preprocessed", str(root / "pre"))
    patch.setenv("DISYRE_results", str(results if results is not None else root / "res"))
    patch.setenv("DISYRE_n_proc_DA", "0")


def make_environment(patch, root: Path) -> None:
    """``root``'s raw, pre and res folders, made, and the environment pointed at them."""
    for sub in ("raw", "pre", "res"):
        (root / sub).mkdir(exist_ok=True)
    point_environment_at(patch, root)


def crash_then_resume(patch, trainer_class: type, crash_at_step: int, *train_args, **train_kwargs) -> Path:
    """``train(*train_args, **train_kwargs)`` crashing (KeyboardInterrupt) when ``trainer_class``'s
    step reaches ``crash_at_step``, then continued with ``resume=True``; returns the run folder."""
    original = trainer_class.train_step

    def crash(self, batch):
        if self.step == crash_at_step:
            raise KeyboardInterrupt("simulated crash")
        return original(self, batch)

    patch.setattr(trainer_class, "train_step", crash)
    with pytest.raises(KeyboardInterrupt):
        train(*train_args, **train_kwargs)
    patch.setattr(trainer_class, "train_step", original)
    return train(*train_args, **train_kwargs, resume=True)
