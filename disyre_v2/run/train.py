"""disyre_v2_train: one training run per (fold, seed); under torchrun, one per process."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from disyre_v2.run.common import add_common_flags, int_at_least, positive_float, run_cli
from disyre_v2.training.trainer.registry import trainer_names

logger = logging.getLogger(__name__)
# The paper-sized network (26 M parameters, P = 128 at 1 mm): hours per model on a CPU.
PAPER_SIZED_CONFIGURATIONS = ("2d",)


def warn_if_paper_network_on_cpu(configuration: str, device: str, what: str) -> None:
    """A warning (not an error: it runs, slowly) when the paper-sized ``2d`` network is to run on a CPU."""
    if device == "cpu" and configuration in PAPER_SIZED_CONFIGURATIONS:
        logger.warning("Configuration %s is the paper-sized network (26 M parameters) and -device is cpu: %s will be "
                       "very slow. Use -device cuda on a GPU, or the CPU-sized configuration 2d_small.",
                       configuration, what)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="disyre_v2_train",
        description="Train a DISYRE v2 restoration model on the healthy training cases of a preprocessed dataset. "
        "Outputs go to $DISYRE_results/DatasetNNN_Name/<trainer>__<plans>__<configuration>/fold_F_seed_S/.",
        epilog="Examples: disyre_v2_train 1 2d_small 0 --seed 0 --steps 3000 | fine-tune: disyre_v2_train 2 "
        "2d_small all --steps 300 --pretrained_weights MODEL/fold_all_seed_0/checkpoint_final.pth | several GPUs: "
        "torchrun --nproc_per_node=4 $(which disyre_v2_train) 1 2d 0 -device cuda",
    )
    parser.add_argument("dataset", help="dataset id or name (1, 001, Dataset001_Name)")
    parser.add_argument("configuration", help="configuration of the plans, e.g. 2d or 2d_small")
    parser.add_argument("fold", help="fold 0..4 of splits_final.json, or 'all' (train on every case)")
    parser.add_argument("--seed", type=int_at_least(0), default=0, help="random seed of the run, >= 0 (default 0); one folder per seed")
    parser.add_argument("-tr", "--trainer", default="DisyreTrainer",
                        help=f"trainer class (default DisyreTrainer); available: {', '.join(trainer_names())}")
    parser.add_argument("--steps", type=int_at_least(1), default=None, help="number of training steps, >= 1 (default: the plans')")
    parser.add_argument("--c", "--continue", dest="resume", action="store_true",
                        help="continue from checkpoint_latest.pth of this run")
    parser.add_argument("--pretrained_weights", type=Path, default=None, metavar="CHECKPOINT",
                        help="fine-tune: start from this checkpoint's weights (EMA weights if it has them) with a new "
                        "optimiser and learning-rate schedule from step 0; its network plans and level input must "
                        "equal this configuration's. Not with --c")
    parser.add_argument("-device", "--device", default="cpu", choices=["cpu", "cuda"], help="device (default cpu)")
    parser.add_argument("--val_every", type=int_at_least(1), default=None,
                        help="validate, write checkpoint_latest.pth and progress.png every K steps, >= 1 (default: "
                        "trainer's)")
    parser.add_argument("--deterministic", action="store_true",
                        help="reproducible to the bit: data pipeline in-process, deterministic algorithms")
    parser.add_argument("--time_budget", type=positive_float, default=None, metavar="SECONDS",
                        help="stop early enough to finish within this many seconds, > 0 (steps estimated from the "
                        "first few; the learning-rate schedule is fitted to the shortened run)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the network (useful on GPU)")
    add_common_flags(parser)
    return parser


def _run(args: argparse.Namespace) -> None:
    from disyre_v2.training.run_training import train

    warn_if_paper_network_on_cpu(args.configuration, args.device, "training")
    output = train(args.dataset, args.configuration, args.fold, trainer=args.trainer, seed=args.seed,
                   num_steps=args.steps, resume=args.resume, device=args.device, val_every=args.val_every,
                   deterministic=args.deterministic, compile=args.compile, time_budget_s=args.time_budget,
                   pretrained_weights=args.pretrained_weights)
    print(f"Model written to {output}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(_run, args)


if __name__ == "__main__":
    raise SystemExit(main())
