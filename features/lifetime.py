"""Worker processes end with the process that started them, however it ends.

A process killed with ``SIGKILL`` runs no cleanup, so its workers are never told to stop:
joblib's loky workers then wait out their idle timeout (five minutes) and PyTorch's
DataLoader workers notice only at their next five-second check. ``end_with_parent`` runs
in each worker as it starts (loky's and multiprocessing's ``initializer``, the
DataLoader's ``worker_init_fn``) and ends it within ``CHECK_SECONDS`` of its parent's
death, whatever the cause. It polls the parent's pid: portable to every POSIX system, and
unlike ``prctl(PR_SET_PDEATHSIG)`` not fooled by a worker started from a thread that ends.
Dask's local workers need nothing: ``distributed`` already ends them with their parent.
"""

from __future__ import annotations

import os
import threading
import time

__all__ = ["CHECK_SECONDS", "end_with_parent"]

CHECK_SECONDS = 0.5
"""How often a worker checks that its parent still runs."""


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(CHECK_SECONDS)
    os._exit(1)  # no cleanup to run: the parent that wanted the results is gone


def end_with_parent(parent: int, *_) -> None:
    """Start, in this (worker) process, a daemon thread that ends it once process ``parent``
    (the pid of the process that started it, given by that process: the worker may start
    after its parent died) is no longer its parent.

    Further arguments are ignored: ``partial(end_with_parent, os.getpid())`` serves as a
    DataLoader's ``worker_init_fn`` (which passes the worker's id).
    """
    threading.Thread(target=_watch, args=(parent,), name="end-with-parent", daemon=True).start()
