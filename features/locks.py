"""One holder at a time: a lock file that names its holder.

The lock is a file, created whole by a hard link (never seen empty), holding the holder's
pid, host and start time (and what it is doing), so that whoever finds it taken can say
who to wait for. A lock left by a killed process (same host, pid no longer running) is
taken over.

``WriterLock`` is a feature store's (one writer; readers never lock, since the store file
is only ever replaced whole, see ``features.store``); the runner holds a ``FileLock`` on
each run folder while it runs stages. Both wait for a live holder (``FileLock.hold``),
saying once who it is and since when, unless told not to (``--no-wait``: ``waiting(False)``
for the store locks taken inside).

Infrastructure, like ``features.errors`` and ``features.files``: it imports no domain
module, so that every package may lock.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from .errors import UserError
from .files import write_error

__all__ = ["FileLock", "LockHeld", "StoreLocked", "WriterLock", "waiting"]

log = logging.getLogger(__name__)

_WAIT = ContextVar("wait_for_locks", default=True)
POLL_SECONDS = 1.0
"""How often a waiting process tries the lock again."""


@contextmanager
def waiting(wait: bool):
    """Inside, a store lock held by another live process is waited for (``True``) or raises
    ``StoreLocked`` (``False``): the command line's ``--no-wait`` reaches the locks that
    extraction takes without being passed through every call."""
    token = _WAIT.set(wait)
    try:
        yield
    finally:
        _WAIT.reset(token)


class LockHeld(UserError, OSError):
    """Another live process holds the lock, and this one was told not to wait (``--no-wait``)."""


class StoreLocked(LockHeld):
    """Another process is writing the same feature store."""


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


class FileLock:
    """A lock file at ``path``; ``about`` (e.g. ``command="..."``) is recorded with the holder.

    ``acquire()`` takes it and returns None, or returns the holder's record when another
    live process has it; ``release()`` gives it back.
    """

    def __init__(self, path: str | Path, **about):
        self.path = Path(path)
        self.holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **about,
        }

    def _create(self) -> bool:
        """Link a file holding the holder's record to ``path``: the lock never exists empty."""
        record = self.path.with_name(f"{self.path.name}.{self.holder['pid']}")
        try:
            record.write_text(json.dumps(self.holder))
        except OSError as error:  # e.g. a full disk
            record.unlink(missing_ok=True)
            raise write_error(record, error) from error
        try:
            os.link(record, self.path)
        except FileExistsError:
            return False
        finally:
            record.unlink()
        return True

    def _current_holder(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):  # vanished meanwhile
            return {}

    def acquire(self) -> dict | None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self._create():
            return None
        holder = self._current_holder()
        pid = holder.get("pid")
        if holder.get("host") == self.holder["host"] and isinstance(pid, int) and pid > 0 and not _running(pid):
            self.path.unlink(missing_ok=True)  # left by a killed process: taken over
            if self._create():
                return None
            holder = self._current_holder()
        return holder

    def release(self) -> None:
        self.path.unlink(missing_ok=True)

    def hold(self, busy: Callable[[dict], str], locked: type[LockHeld], wait: bool = True) -> None:
        """Take the lock, waiting while another live process holds it (a warning says once
        ``busy(holder)``: who, since when); with ``wait=False`` raise ``locked`` instead."""
        holder = self.acquire()
        if holder is None:
            return
        if not wait:
            raise locked(f"{busy(holder)}; wait for it to finish (run without --no-wait to wait)")
        log.warning("%s; waiting for it to finish", busy(holder))
        while holder is not None:
            time.sleep(POLL_SECONDS)
            holder = self.acquire()


class WriterLock(FileLock):
    """``with WriterLock(store_path):`` holds ``<store>.lock`` for the duration, waiting for
    another writer to finish first (unless inside ``waiting(False)``)."""

    def __init__(self, store_path: str | Path):
        super().__init__(Path(store_path).with_name(Path(store_path).name + ".lock"))

    def __enter__(self) -> "WriterLock":
        self.hold(lambda holder: f"{self.path.with_suffix('')} is being written by pid {holder.get('pid', '?')} on "
                                 f"{holder.get('host', '?')} since {holder.get('started', '?')}",
                  StoreLocked, _WAIT.get())
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()
