"""The training API behind ``disyre_v2_train``: find the plans, set up the model folder, train."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import torch

from disyre_v2.errors import UserError
from disyre_v2.imageio.atomic import remove_stale_temporaries
from disyre_v2.paths import preprocessed_folder, resolve_dataset_name, results_folder
from disyre_v2.planning.plans import get_configuration, load_plans
from disyre_v2.training.data_pipeline import num_augmentation_workers
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
          deterministic: bool = False, compile: bool = False, time_budget_s: float | None = None,
          pretrained_weights: Path | str | None = None) -> Path:
    """Train one (fold, seed); returns the run folder. Under torchrun every rank calls this.

    ``pretrained_weights``: fine-tune, i.e. start from the weights of another model's checkpoint (same
    network plans and level input; a new optimiser and learning-rate schedule from step 0). Every rank
    loads the same file, so all ranks start from the same weights.

    Everything that can be checked is checked before the run folder is made, and a run that fails
    before its first checkpoint leaves no folder behind (an empty run would break the next
    prediction of the model)."""
    fold = parse_fold(fold)
    if pretrained_weights is not None:
        pretrained_weights = Path(pretrained_weights)
        if resume:
            raise UserError("--pretrained_weights starts a new run from another model's weights and cannot be "
                            "combined with --c (continue this run)", pretrained_weights,
                            "drop --c to fine-tune in a new run folder, or drop --pretrained_weights to continue")
        if not pretrained_weights.is_file():
            raise UserError("the checkpoint given as --pretrained_weights does not exist", pretrained_weights,
                            "pass a checkpoint_final.pth (or checkpoint_latest.pth) of a trained model")
    if num_steps is not None and num_steps < 1:
        raise UserError(f"the number of training steps must be at least 1, got {num_steps}", fix="pass --steps N >= 1")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("-device cuda was given but no CUDA device is available; use -device cpu.")
    trainer_class = get_trainer_class(trainer)
    dataset_name = resolve_dataset_name(dataset)
    source = preprocessed_folder() / dataset_name
    plans_path = source / "plans.json"
    if not plans_path.is_file():
        raise FileNotFoundError(f"{plans_path} is missing: run disyre_v2_plan_and_preprocess -d {dataset} first.")
    plans = load_plans(plans_path)
    get_configuration(plans, configuration)  # a clear error for an unknown or incomplete configuration
    num_augmentation_workers()  # a clear error for a bad DISYRE_n_proc_DA, before anything is written
    plans_name = plans.get("plans_name", "DisyrePlans")
    folder = model_folder(dataset_name, trainer, plans_name, configuration)
    output = folder / run_folder_name(fold, seed)
    latest = output / "checkpoint_latest.pth"
    if not resume and (latest.is_file() or (output / "checkpoint_final.pth").is_file()):
        raise FileExistsError(f"{output} already holds checkpoints. Continue with --c, or delete the folder "
                              f"to start over.")
    if resume and not latest.is_file():
        logger.warning("--c given but %s does not exist: starting this run from scratch.", latest)

    context = init_distributed(device)
    if device == "cuda":
        device = f"cuda:{context.local_rank}"
    log_handler = None
    created = context.is_main and not output.exists()
    try:
        runner = trainer_class(plans, configuration, fold, source, output, seed=seed, device=device,
                               num_steps=num_steps, val_every=val_every, deterministic=deterministic,
                               compile=compile, time_budget_s=time_budget_s, distributed=context)
        runner.initialize()
        if pretrained_weights is not None:  # before the run folder exists: a refusal leaves nothing behind
            runner.load_pretrained_weights(pretrained_weights)
        if context.is_main:
            output.mkdir(parents=True, exist_ok=True)
            remove_stale_temporaries(output)
            for name in MODEL_FOLDER_COPIES:
                if (source / name).is_file():
                    shutil.copyfile(source / name, folder / name)
            log_handler = _attach_log_file(output / "training_log.txt")
        if resume and latest.is_file():
            runner.load_checkpoint(latest)
        runner.run()
    except BaseException:
        if created and output.is_dir() and not any(output.glob("checkpoint_*.pth")):
            if log_handler is not None:
                logging.getLogger("disyre_v2").removeHandler(log_handler)
                log_handler.close()
                log_handler = None
            shutil.rmtree(output, ignore_errors=True)  # nothing worth keeping: leave no empty run
        raise
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
