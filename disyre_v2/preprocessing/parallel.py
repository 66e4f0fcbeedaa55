"""Run a per-case function over many cases, in worker processes, with a progress bar.

Results come back in the order of the jobs, so whatever is computed from them does not depend on
the number of workers.
"""
from __future__ import annotations

import multiprocessing
from typing import Callable, Iterable, Sequence, TypeVar

import SimpleITK as sitk
from tqdm import tqdm

J = TypeVar("J")
R = TypeVar("R")


def _single_threaded_worker() -> None:
    # N processes on N cores: threads inside each would only oversubscribe the machine.
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)


def map_cases(func: Callable[[J], R], jobs: Sequence[J], num_workers: int = 1, desc: str = "",
              progress: bool = True, unit: str = "case") -> list[R]:
    """``[func(job) for job in jobs]``, with ``num_workers`` processes when > 1 (spawned, not forked).

    ``func`` must be a module-level function and jobs picklable. The first exception in a worker
    is raised here.
    """
    if num_workers < 1:
        raise ValueError(f"the number of worker processes must be at least 1, got {num_workers}")
    bar_args = dict(total=len(jobs), desc=desc, unit=unit, disable=not progress)
    if num_workers == 1 or len(jobs) <= 1:
        return [func(job) for job in tqdm(jobs, **bar_args)]
    context = multiprocessing.get_context("spawn")
    with context.Pool(min(num_workers, len(jobs)), initializer=_single_threaded_worker) as pool:
        results: Iterable[R] = pool.imap(func, jobs)
        return list(tqdm(results, **bar_args))
