"""Background processes for CPU work: preparing cases, and prediction's reading, preprocessing and export.

``background_pool(0)`` runs every submitted call at once in this process, so the caller's code is
the same with and without workers. Workers are started with "spawn": they never inherit the
parent's torch threads or CUDA context.
"""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import contextmanager
from typing import Callable, Iterator

from disyre_v2.processes.worker_lifetime import die_with_parent


class InlineExecutor(Executor):
    """An executor without workers: ``submit`` runs the call and returns its finished future."""

    def submit(self, fn: Callable, /, *args, **kwargs) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as error:  # delivered by result(), as a worker's would be (Ctrl-C is not held back)
            future.set_exception(error)
        return future


@contextmanager
def background_pool(num_workers: int) -> Iterator[Executor]:
    """An executor with ``num_workers`` processes (0: inline). On an error, queued calls are dropped
    and the workers stopped before the error reaches the caller."""
    if num_workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {num_workers}.")
    if num_workers == 0:
        yield InlineExecutor()
        return
    # A worker must not outlive this process, whatever kills it (kill -9 included).
    pool = ProcessPoolExecutor(num_workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=die_with_parent, initargs=(os.getpid(),))
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
