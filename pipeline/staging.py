"""A stage's outputs replace the previous set only when all of them are written.

A stage runs with its run folder swapped for a staging folder, ``<run dir>/.staging``,
that holds hard links to every file of the run folder except the stage's own outputs and
the runner's files (stamps, lock, log): the stage reads its inputs where it expects them
and writes its outputs anew. Every writer of the project writes a new file and renames it
over the old name (``features.files.write_atomic``), so a link is replaced, never written
through, and no file of the last successful run changes while a stage runs.

When the stage has succeeded, ``commit`` renames its outputs and the resolved config
(``config.toml``) into the run folder, replacing the previous set (an output the stage
no longer writes is removed). When it fails, whatever the cause, the staging folder is
removed and the run folder is as the last successful run left it; a run killed outright
leaves the staging folder behind, and the next run removes it before it starts. Renames
need no free space, so a full disk cannot stop a commit half-way; a run killed during one
(a few renames) leaves outputs that no longer match their stamp, which ``status`` then
reports as stale.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from features.files import write_atomic

from .config import Config, dump_config

__all__ = ["CONFIG_NAME", "STAGING_NAME", "commit", "remove_staging", "staged", "write_config"]

STAGING_NAME = ".staging"
CONFIG_NAME = "config.toml"
_REPLACED = ".replaced"  # a previous output folder, inside the staging folder, while its successor moves in


def _staging(config: Config) -> Path:
    return Path(config.run.dir) / STAGING_NAME


def remove_staging(config: Config) -> None:
    """Remove the staging folder a killed run left behind."""
    shutil.rmtree(_staging(config), ignore_errors=True)


def _inside(outputs: list[Path], run_dir: Path) -> list[Path]:
    """The outputs under the run folder, relative to it (others are written in place, whole)."""
    run_dir = run_dir.absolute()
    return [Path(path).absolute().relative_to(run_dir) for path in outputs
            if Path(path).absolute().is_relative_to(run_dir)]


def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:  # a file system without hard links
        shutil.copy2(source, target)


@contextmanager
def staged(config: Config, outputs: list[Path], private: set[str]):
    """The config to run a stage with: the same, its run folder the staging folder, which
    holds links to the run folder's files but the stage's ``outputs`` and the ``private``
    names at its top (the runner's own files). Removed again when the stage fails."""
    run_dir = Path(config.run.dir)
    staging = _staging(config)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        owned = _inside(outputs, run_dir)
        skipped = {STAGING_NAME, CONFIG_NAME, *private}
        for file in run_dir.rglob("*"):
            relative = file.relative_to(run_dir)
            if (relative.parts[0] in skipped or file.is_dir()
                    or any(relative == output or relative.is_relative_to(output) for output in owned)):
                continue
            _link(file, staging / relative)
        yield dataclasses.replace(config, run=dataclasses.replace(config.run, dir=str(staging)))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def write_config(config: Config, folder: Path) -> None:
    """The resolved config as ``config.toml`` in ``folder``: what made the run's outputs."""
    write_atomic(folder / CONFIG_NAME, lambda partial: partial.write_text(dump_config(config)))


def commit(config: Config, outputs: list[Path], records_config: bool) -> None:
    """Move a staged stage's outputs (and with ``records_config`` the resolved config) into
    the run folder, replacing the previous ones, and remove the staging folder."""
    run_dir, staging = Path(config.run.dir), _staging(config)
    if records_config:
        write_config(config, staging)
    for relative in [*_inside(outputs, run_dir), *([Path(CONFIG_NAME)] if records_config else [])]:
        new, old = staging / relative, run_dir / relative
        if not new.exists():  # not written this time: the previous one no longer belongs to the set
            _remove(old)
            continue
        old.parent.mkdir(parents=True, exist_ok=True)
        if new.is_dir() and old.exists():
            os.replace(old, staging / _REPLACED)  # folders cannot be renamed over one another
        os.replace(new, old)
        _remove(staging / _REPLACED)
    shutil.rmtree(staging, ignore_errors=True)
