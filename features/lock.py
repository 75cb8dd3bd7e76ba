"""One writer per feature store: a lock file that names its holder.

The lock is a file created with ``O_EXCL`` beside the store, holding the writer's pid,
host and start time, so a second writer's error says who to wait for. A lock left by a
killed process (same host, pid no longer running) is taken over. Readers never lock:
the store file is only ever replaced whole (see ``features.store``).
"""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime, timezone
from pathlib import Path

from .store import StoreError

__all__ = ["StoreLocked", "WriterLock"]


class StoreLocked(StoreError):
    """Another process is writing the same feature store."""


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


class WriterLock:
    """``with WriterLock(store_path):`` holds ``<store>.lock`` for the duration."""

    def __init__(self, store_path: str | Path):
        self.path = Path(store_path).with_name(Path(store_path).name + ".lock")
        self.holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }

    def _create(self) -> bool:
        try:
            descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(descriptor, "w") as file:
            json.dump(self.holder, file)
        return True

    def _current_holder(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):  # vanished meanwhile, or a writer between create and dump
            return {}

    def __enter__(self) -> "WriterLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self._create():
            return self
        holder = self._current_holder()
        pid = holder.get("pid")
        stale = holder.get("host") == self.holder["host"] and isinstance(pid, int) and pid > 0 and not _running(pid)
        if stale:
            self.path.unlink(missing_ok=True)
            if self._create():
                return self
            holder = self._current_holder()
        raise StoreLocked(
            f"{self.path.with_suffix('')} is being written by pid {holder.get('pid', '?')} on "
            f"{holder.get('host', '?')} since {holder.get('started', '?')}; wait for it to finish, "
            f"or delete {self.path} if that process no longer runs"
        )

    def __exit__(self, *exc_info) -> None:
        self.path.unlink(missing_ok=True)
