"""Files written whole, and their fingerprints: one helper each for the whole project.

A file that a killed process leaves half-written must never look finished, so every output
(feature stores, models and their sidecars, results, plots, stamps) is written under a
temporary name, flushed to disk and renamed over the target in one step.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Callable

__all__ = ["MISSING", "file_digest", "file_sha256", "file_stat", "write_atomic", "write_json"]

MISSING = "missing"
"""The fingerprint of a file that does not exist."""


def write_atomic(path: str | Path, write: Callable[[Path], None], start_from_old: bool = False) -> None:
    """Call ``write(temporary_path)``, flush the result to disk, then rename it to ``path``.

    ``start_from_old``: the temporary file starts as a copy of ``path`` when that exists
    (a feature store changed in place, as far as any reader can tell).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    if start_from_old and path.exists():
        shutil.copyfile(path, partial)
    write(partial)
    with open(partial, "rb+") as file:
        os.fsync(file.fileno())
    os.replace(partial, path)


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
