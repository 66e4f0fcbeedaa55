"""Worker processes (augmentation, background pools) die with the process that started them, whatever kills it.

batchgenerators' workers are daemon processes: a normal exit of the trainer ends them, but kill -9 (or
an out-of-memory kill) re-parents them, and each keeps its memory (hundreds of MB) while it waits on a
queue nobody reads. On Linux the kernel sends a worker SIGKILL when its parent dies (prctl
PR_SET_PDEATHSIG); elsewhere a daemon thread of the worker watches its parent process id.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1
_POLL_SECONDS = 1.0


def _watch_parent(parent_pid: int) -> None:
    while True:
        if os.getppid() != parent_pid:
            os._exit(1)
        time.sleep(_POLL_SECONDS)


def die_with_parent(parent_pid: int) -> None:
    """Call in a worker process: end it as soon as ``parent_pid`` is gone. A no-op in that process itself."""
    if os.getpid() == parent_pid:
        return
    registered = False
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            registered = libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
        except (OSError, AttributeError):
            registered = False
    if not registered:
        threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True, name="watch-parent").start()
    if os.getppid() != parent_pid:  # the parent died before the signal was registered
        os._exit(1)
