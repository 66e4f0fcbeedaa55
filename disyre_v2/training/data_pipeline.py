"""Assemble loader → augmentation → anomaly synthesis in batchgenerators' multi-process augmenters."""
from __future__ import annotations

import logging
import os
from typing import Iterator, Sequence

import numpy as np
from batchgenerators.dataloading.multi_threaded_augmenter import MultiThreadedAugmenter
from batchgenerators.dataloading.nondet_multi_threaded_augmenter import NonDetMultiThreadedAugmenter
from batchgenerators.dataloading.single_threaded_augmenter import SingleThreadedAugmenter
from batchgenerators.transforms.abstract_transforms import AbstractTransform

from disyre_v2.training.augmentation import BatchSeededCompose
from disyre_v2.training.data_loader import SliceDataLoader

logger = logging.getLogger(__name__)

WORKERS_ENV = "DISYRE_n_proc_DA"


def num_augmentation_workers() -> int:
    """Worker processes for data augmentation: $DISYRE_n_proc_DA, default cores − 1; 0 = in-process."""
    value = os.environ.get(WORKERS_ENV)
    if value is None or value == "":
        return max((os.cpu_count() or 1) - 1, 1)
    try:
        workers = int(value)
    except ValueError:
        raise ValueError(f"{WORKERS_ENV}={value!r} is not an integer; set it to the number of worker processes (0 = none).") from None
    if workers < 0:
        raise ValueError(f"{WORKERS_ENV}={value} must be >= 0.")
    return workers


def build_batch_generator(
    loader: SliceDataLoader,
    transforms: Sequence[AbstractTransform],
    num_workers: int | None = None,
    *,
    deterministic: bool = False,
    pin_memory: bool = False,
) -> Iterator[dict]:
    """An endless iterator of transformed batches.

    With workers, every worker's loader has its own stream (see ``SliceDataLoader.set_thread_id``).
    ``deterministic`` keeps the workers' round-robin order (MultiThreadedAugmenter), so the sequence
    of batches repeats exactly; otherwise batches arrive as soon as any worker has one
    (NonDetMultiThreadedAugmenter), which is faster but interleaves the streams in arrival order.
    """
    compose = BatchSeededCompose(transforms)
    workers = num_augmentation_workers() if num_workers is None else num_workers
    if workers == 0:
        return SingleThreadedAugmenter(loader, compose)
    seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(list(loader.seed_key[:1])).spawn(workers)]
    logger.info("Data augmentation in %d worker process(es)%s.", workers, " (deterministic order)" if deterministic else "")
    if deterministic:
        return MultiThreadedAugmenter(loader, compose, workers, num_cached_per_queue=2, seeds=seeds, pin_memory=pin_memory)
    return NonDetMultiThreadedAugmenter(loader, compose, workers, num_cached=max(2 * workers, 2), seeds=seeds,
                                        pin_memory=pin_memory)
