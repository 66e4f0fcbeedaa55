"""The training API behind ``disyre_v2_train``: find the plans, set up the model folder, train."""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import torch

from disyre_v2.paths import preprocessed_folder, resolve_dataset_name, results_folder
from disyre_v2.training.trainer.distributed import init_distributed, shutdown
from disyre_v2.training.trainer.registry import get_trainer_class

logger = logging.getLogger(__name__)

MODEL_FOLDER_COPIES = ("plans.json", "dataset.json", "dataset_fingerprint.json")


def model_folder(dataset_name: str, trainer_name: str, plans_name: str, configuration: str) -> Path:
    """``$DISYRE_results/DatasetNNN_Name/<Trainer>__<plans>__<config>``."""
    return results_folder() / dataset_name / f"{trainer_name}__{plans_name}__{configuration}"


def run_folder_name(fold: int | str, seed: int) -> str:
    return f"fold_{fold}_seed_{seed}"


def parse_fold(fold: str | int) -> int | str:
    if str(fold) == "all":
        return "all"
    try:
        value = int(fold)
    except ValueError:
        raise ValueError(f"FOLD must be 0..4 or 'all', got {fold!r}.") from None
    if not 0 <= value <= 4:
        raise ValueError(f"FOLD must be 0..4 or 'all', got {fold!r}.")
    return value


def train(dataset: str | int, configuration: str, fold: str | int, *, trainer: str = "DisyreTrainer", seed: int = 0,
          num_steps: int | None = None, resume: bool = False, device: str = "cpu", val_every: int | None = None,
          deterministic: bool = False, compile: bool = False, time_budget_s: float | None = None) -> Path:
    """Train one (fold, seed); returns the run folder. Under torchrun every rank calls this."""
    fold = parse_fold(fold)
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("-device cuda was given but no CUDA device is available; use -device cpu.")
    trainer_class = get_trainer_class(trainer)
    dataset_name = resolve_dataset_name(dataset)
    source = preprocessed_folder() / dataset_name
    plans_path = source / "plans.json"
    if not plans_path.is_file():
        raise FileNotFoundError(f"{plans_path} is missing: run disyre_v2_plan_and_preprocess -d {dataset} first.")
    plans = json.loads(plans_path.read_text())
    plans_name = plans.get("plans_name", "DisyrePlans")
    folder = model_folder(dataset_name, trainer, plans_name, configuration)
    output = folder / run_folder_name(fold, seed)

    context = init_distributed(device)
    if device == "cuda":
        device = f"cuda:{context.local_rank}"
    log_handler = None
    try:
        if context.is_main:
            output.mkdir(parents=True, exist_ok=True)
            for name in MODEL_FOLDER_COPIES:
                if (source / name).is_file():
                    shutil.copyfile(source / name, folder / name)
            log_handler = _attach_log_file(output / "training_log.txt")
        runner = trainer_class(plans, configuration, fold, source, output, seed=seed, device=device,
                               num_steps=num_steps, val_every=val_every, deterministic=deterministic,
                               compile=compile, time_budget_s=time_budget_s, distributed=context)
        runner.initialize()
        latest = output / "checkpoint_latest.pth"
        if resume:
            if latest.is_file():
                runner.load_checkpoint(latest)
            else:
                logger.warning("--c given but %s does not exist: starting from scratch.", latest)
        elif latest.is_file() or (output / "checkpoint_final.pth").is_file():
            raise FileExistsError(f"{output} already holds checkpoints. Continue with --c, or delete the folder "
                                  f"to start over.")
        runner.run()
    finally:
        if log_handler is not None:
            logging.getLogger("disyre_v2").removeHandler(log_handler)
            log_handler.close()
        shutdown(context)
    return output


def _attach_log_file(path: Path) -> logging.Handler:
    """training_log.txt records INFO messages of the package whatever the console shows."""
    handler = logging.FileHandler(path)
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    package_logger = logging.getLogger("disyre_v2")
    if package_logger.getEffectiveLevel() > logging.INFO:
        package_logger.setLevel(logging.INFO)
    package_logger.addHandler(handler)
    return handler
