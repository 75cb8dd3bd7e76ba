"""Files written whole, and their fingerprints: one helper each for the whole project.

A file that a killed process leaves half-written must never look finished, so every output
(feature stores, models and their sidecars, results, plots, stamps) is written under a
temporary name, flushed to disk and renamed over the target in one step.

Infrastructure: it imports no domain module (only ``features.errors``), so that every
package writes its files through it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Callable

from .errors import UserError

__all__ = ["MISSING", "WriteError", "disk_space", "file_digest", "file_sha256", "file_stat", "write_atomic",
           "write_error", "write_json"]

MISSING = "missing"
"""The fingerprint of a file that does not exist."""


class WriteError(UserError, OSError):
    """A file could not be written; the message names it and the free space where it goes."""


def disk_space(path: str | Path) -> str:
    """The free space of the disk holding ``path`` (or its nearest existing folder), for messages."""
    folder = Path(path).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return "free space unknown"
    units = ("bytes", "kB", "MB", "GB", "TB")
    scale = 0
    while free >= 1000 and scale < len(units) - 1:
        free, scale = free / 1000, scale + 1
    return f"{free:.{1 if scale else 0}f} {units[scale]} free there"


def write_error(path: str | Path, error: OSError) -> WriteError:
    """``error``, met writing ``path``, as one line naming the file and the free space."""
    reason = error.strerror or str(error).splitlines()[0]
    made = WriteError(f"cannot write {path}: {reason} ({disk_space(path)})")
    made.errno = error.errno
    return made


def _is_write_failure(error: BaseException) -> bool:
    """An OSError of the writing itself (a full disk, no permission, h5py's failed write), not
    one that the writing function raises about its inputs (``StoreError`` and its kind)."""
    return isinstance(error, OSError) and not isinstance(error, WriteError) and (
        type(error) is OSError or error.errno is not None)


def write_atomic(path: str | Path, write: Callable[[Path], None], start_from_old: bool = False) -> None:
    """Call ``write(temporary_path)``, flush the result to disk, then rename it to ``path``.

    ``start_from_old``: the temporary file starts as a copy of ``path`` when that exists
    (a feature store changed in place, as far as any reader can tell). On failure the
    temporary file is removed (a full disk stays no fuller), and a failure to write is
    raised as a ``WriteError`` naming ``path`` and the free space.
    """
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.unlink(missing_ok=True)
        if start_from_old and path.exists():
            shutil.copyfile(path, partial)
        write(partial)
        with open(partial, "rb+") as file:
            os.fsync(file.fileno())
        os.replace(partial, path)
    except BaseException as error:
        partial.unlink(missing_ok=True)
        if _is_write_failure(error):
            raise write_error(path, error) from error
        raise


def write_json(path: str | Path, value) -> None:
    """``value`` as indented JSON, written atomically (``write_atomic``)."""
    write_atomic(path, lambda partial: Path(partial).write_text(json.dumps(value, indent=2) + "\n"))


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's content, read a megabyte at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_digest(path: str | Path) -> str:
    """A short fingerprint of a small file's content, or ``missing``; rewriting it unchanged keeps it."""
    try:
        return file_sha256(path)[:16]
    except FileNotFoundError:
        return MISSING


def file_stat(path: str | Path) -> str:
    """A cheap fingerprint of a big file (size and modification time), or ``missing``."""
    try:
        stat = os.stat(path)
    except OSError:
        return MISSING
    return f"{stat.st_size}:{stat.st_mtime_ns}"
