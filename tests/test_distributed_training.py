"""Multi-process training for real: torchrun with the gloo backend on CPU, two ranks."""
import json
import os
import subprocess
import sys

import torch

from disyre_v2.training.trainer.checkpoint import load_checkpoint
from tests.trainer_fixtures import make_preprocessed_dataset



def torchrun(args, env, timeout=300):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "disyre_v2.run.train", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


def gloo_environment(data_root, results) -> dict:
    """The environment of a torchrun on CPU: data under ``data_root``'s raw and pre, runs under
    ``results``, in-process augmentation, one thread per rank."""
    return dict(os.environ, DISYRE_raw=str(data_root / "raw"), DISYRE_preprocessed=str(data_root / "pre"),
                DISYRE_results=str(results), DISYRE_n_proc_DA="0", OMP_NUM_THREADS="1")


def test_two_gloo_ranks_train_resume_and_agree(tmp_path):
    env = gloo_environment(tmp_path, tmp_path / "res")
    for key in ("raw", "pre", "res"):
        (tmp_path / key).mkdir()
    old = {k: os.environ.get(k) for k in ("DISYRE_raw", "DISYRE_preprocessed", "DISYRE_results")}
    os.environ.update({k: env[k] for k in old})
    try:
        name = make_preprocessed_dataset(tmp_path)
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    first = torchrun(["1", "2d_small", "0", "-tr", "DisyreTrainer_debug", "--steps", "4", "--val_every", "2"], env)
    assert first.returncode == 0, first.stderr[-3000:]
    run = tmp_path / "res" / name / "DisyreTrainer_debug__DisyrePlans__2d_small" / "fold_0_seed_0"
    log = (run / "training_log.txt").read_text()
    assert "Global batch 8 (4 per rank × 2 ranks)" in log
    assert "Parameters identical on 2 ranks" in log and "first batches differ on 2 of 2 ranks" in log
    assert load_checkpoint(run / "checkpoint_final.pth")["step"] == 4
    assert json.loads((run / "debug.json").read_text())["torch_threads"] == 1  # OMP_NUM_THREADS=1 per rank
    # Only rank 0 writes: one log, one set of checkpoints, no per-rank files.
    assert sorted(p.name for p in run.iterdir()) == sorted(
        ["checkpoint_final.pth", "checkpoint_latest.pth", "debug.json", "progress.png", "schedule.json",
         "training_log.txt"])

    resumed = torchrun(["1", "2d_small", "0", "-tr", "DisyreTrainer_debug", "--steps", "6", "--val_every", "2",
                        "--c"], env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    state = load_checkpoint(run / "checkpoint_final.pth")
    assert state["step"] == 6 and len(state["progress"]["train_loss"]) == 6
    assert "Resumed from" in (run / "training_log.txt").read_text()
    assert torch.isfinite(torch.tensor(state["progress"]["train_loss"])).all()

    # A comparison method with its own network (BatchNorm buffers, a tuple output in training):
    # DDP keeps the ranks' parameters identical too.
    vae = torchrun(["1", "2d_small", "0", "-tr", "VaeTrainer", "--steps", "3"], env)
    assert vae.returncode == 0, vae.stderr[-3000:]
    log = (tmp_path / "res" / name / "VaeTrainer__DisyrePlans__2d_small" / "fold_0_seed_0" / "training_log.txt").read_text()
    assert "Parameters identical on 2 ranks" in log

    # FPI: its patch-interpolation synthesis runs in each rank's loader with that rank's seed, and its
    # segmentation network still trains as one.
    fpi = torchrun(["1", "2d_small", "0", "-tr", "FpiSegmentationTrainer", "--steps", "3"], env)
    assert fpi.returncode == 0, fpi.stderr[-3000:]
    run = tmp_path / "res" / name / "FpiSegmentationTrainer__DisyrePlans__2d_small" / "fold_0_seed_0"
    log = (run / "training_log.txt").read_text()
    assert "Global batch 8 (4 per rank × 2 ranks)" in log
    assert "Parameters identical on 2 ranks" in log and "first batches differ on 2 of 2 ranks" in log
    assert load_checkpoint(run / "checkpoint_final.pth")["step"] == 3
