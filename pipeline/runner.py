"""The make-style runner: stamps, staleness, ``--force``, ``--dry-run``, status, clean, the
log, and one run per run folder at a time.

Each stage declares what it reads (config sections, files, the stages before it) and
what it writes; the stage functions know nothing of this. After a stage succeeds the
runner writes a stamp, ``<run dir>/.stamps/<stage>.json``, holding a fingerprint of every
input by name and of every output it wrote. A stage is stale when an input's fingerprint
differs from its stamp, when an output is missing, changed or (in a folder) added, or
when a stage before it has run since (or is about to run), so the reason can always be
named: ``fit: stale ([classifiers] changed)``, ``fit: stale (runs/x/models/vgg16/pool5-avg-logreg.joblib
is missing)``.

Fingerprints are cheap: config sections are hashed without their runtime settings
(``results_of``), big files by size and modification time, small files by content, and
the codes a stage reads from or writes to a shared feature store by the store's own
per-dataset digest (``features.codes_fingerprint``), so that another run adding to the
same file changes nothing here. ``status`` and a run with nothing to do therefore take a
fraction of a second and never import torch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import time
import uuid
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Mapping

from features import distributed_rank
from features.files import MISSING, file_digest, file_stat, write_error, write_json
from features.locks import FileLock, LockHeld, waiting

from .config import Config, results_of
from .staging import commit, remove_staging, staged, write_config
from .version import __version__

__all__ = [
    "Stage",
    "Step",
    "LOG_NAME",
    "RunLocked",
    "plan",
    "execute",
    "clean",
    "run_lock",
    "run_log",
    "stamp_path",
    "output_fingerprint",
]

log = logging.getLogger(__name__)

LOG_NAME = "pipeline.log"
LOCK_NAME = ".lock"
SMALL_FILE = 1 << 20
"""Outputs up to this size are fingerprinted by content, larger ones by size and time."""
_SHOWN = 3  # changed outputs named in a reason before "and N more"


class RunLocked(LockHeld):
    """Another process is running stages in the same run folder."""


def _no_files(config: Config) -> list:
    return []


def _no_fingerprints(config: Config) -> dict:
    return {}


@dataclass(frozen=True)
class Stage:
    """A step of the pipeline with what it reads and writes.

    Parameters
    ----------
    name : str
    run : callable ``(config, progress) -> None``
        The work itself; it raises on failure.
    sections : tuple of str
        The config sections it reads (``"features"``), hashed whole.
    inputs : callable ``(config) -> {name: fingerprint}``
        Fingerprints of the files it reads, by readable name. Must be cheap: it runs on
        every ``status`` and before every run.
    outputs : callable ``(config) -> [Path]``
        Files and folders it writes: fingerprinted after it runs (each file of a folder),
        removed by ``clean``.
    cache : callable ``(config) -> [Path]``
        Outputs shared with other runs (the feature stores); ``clean`` keeps them unless
        asked with ``--cache``.
    shared : callable ``(config) -> {Path: fingerprint}``
        Fingerprints of what it wrote into those shared outputs, by a path-like name
        (``<store>/features/<tap>/<pooling>``): only what this config reads there counts.
    upstream : tuple of str
        The stages whose outputs it reads; they run first when stale.
    records_config : bool
        Whether the resolved config (``config.toml``) is written beside its outputs when it
        succeeds: a stage that makes the run does, ``predict``, which only reads it, does not.
    """

    name: str
    run: Callable[[Config, bool], None]
    sections: tuple[str, ...] = ()
    inputs: Callable[[Config], dict[str, str]] = _no_fingerprints
    outputs: Callable[[Config], list[Path]] = _no_files
    cache: Callable[[Config], list[Path]] = _no_files
    shared: Callable[[Config], dict[Path, str]] = _no_fingerprints
    upstream: tuple[str, ...] = ()
    records_config: bool = True

    def fingerprints(self, config: Config) -> dict[str, str]:
        """Every input of the stage by name: the package version, its sections' settings
        that change results, its files."""
        found = {"package version": __version__}
        for section in self.sections:
            found[f"[{section}]"] = _digest(results_of(getattr(config, section)))
        found.update(self.inputs(config))
        return found

    def written(self, config: Config) -> dict[str, str]:
        """Every output by its name in the stamp (relative to the run folder when inside it)."""
        run_dir = Path(config.run.dir)
        found = {}
        for path in self.outputs(config):
            files = sorted(file for file in path.rglob("*") if file.is_file()) if path.is_dir() else [path]
            found.update({_name(file, run_dir): output_fingerprint(file) for file in files if file.exists()})
        found.update({_name(path, run_dir): value for path, value in self.shared(config).items()})
        return found


@dataclass
class Step:
    """A stage in a plan: whether it runs, and why."""

    stage: Stage
    state: str  # "up to date", "stale", "missing" (never ran or cleaned) or "forced"
    reasons: list[str] = field(default_factory=list)
    stamp: dict | None = None

    @property
    def runs(self) -> bool:
        return self.state != "up to date"

    def __str__(self) -> str:
        detail = ", ".join(self.reasons)
        if not self.runs:
            detail = f"ran {self.stamp['finished']}, took {self.stamp['seconds']:.1f} s"
        return f"{self.stage.name}: {self.state}" + (f" ({detail})" if detail else "")


def stamp_path(config: Config, stage: str) -> Path:
    return Path(config.run.dir) / ".stamps" / f"{stage}.json"


def _read_stamp(config: Config, stage: str) -> dict | None:
    path = stamp_path(config, stage)
    try:
        stamp = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        stamp = None
    if isinstance(stamp, dict) and {"id", "inputs", "upstream"} <= stamp.keys():
        return stamp
    log.warning("ignoring the unreadable stamp %s", path)  # a damaged stamp reads as "never ran": safe
    return None


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def output_fingerprint(path) -> str:
    """A file's content hash when it is small, else its size and modification time."""
    try:
        size = os.stat(path).st_size
    except OSError:
        return MISSING
    return file_digest(path) if size <= SMALL_FILE else file_stat(path)


def _show(path: Path) -> str:
    """A path relative to the working directory when it is under it, for short messages."""
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


def _name(path: Path, run_dir: Path) -> str:
    """An output's name in a stamp: relative to the run folder when inside it, so a moved
    project keeps its stamps."""
    path = Path(path).absolute()
    return path.relative_to(run_dir.absolute()).as_posix() if path.is_relative_to(run_dir.absolute()) else str(path)


def _output_changes(recorded: dict[str, str], now: dict[str, str], run_dir: Path) -> list[str]:
    """Why the outputs differ from the stamp: missing, changed or added, a few named."""
    changes = []
    for name in sorted(recorded.keys() | now.keys()):
        before, after = recorded.get(name, MISSING), now.get(name, MISSING)
        if before != after:
            what = "is missing" if after == MISSING else "was added" if before == MISSING else "changed"
            changes.append(f"{_show(run_dir.absolute() / name)} {what}")
    more = len(changes) - _SHOWN
    return changes[:_SHOWN] + [f"and {more} more outputs"] if more > 1 else changes


def _needed(stages: Mapping[str, Stage], targets) -> list[Stage]:
    """The targets and every stage they depend on, in pipeline order."""
    needed, pending = set(), list(targets)
    while pending:
        name = pending.pop()
        if name not in needed:
            needed.add(name)
            pending += stages[name].upstream
    return [stage for name, stage in stages.items() if name in needed]


def _check(stage: Stage, config: Config, will_run: set[str]) -> Step:
    stamp = _read_stamp(config, stage.name)
    waiting = [f"{name} will run" for name in stage.upstream if name in will_run]
    if stamp is None:
        return Step(stage, "missing", ["never ran", *waiting])
    old, new = stamp["inputs"], stage.fingerprints(config)
    reasons = [f"{name} changed" for name in sorted(old.keys() | new.keys()) if old.get(name) != new.get(name)]
    for name in stage.upstream:
        upstream = _read_stamp(config, name)
        if name not in will_run and (upstream or {}).get("id") != stamp["upstream"].get(name):
            reasons.append(f"{name} ran since")
    if "outputs" in stamp:
        reasons += _output_changes(stamp["outputs"], stage.written(config), Path(config.run.dir))
    else:  # a stamp from before outputs were fingerprinted
        reasons += [f"{_show(path)} is missing" for path in stage.outputs(config) if not path.exists()]
    reasons += [f"{_show(path)} is missing" for path in stage.cache(config) if not path.exists()]
    reasons += waiting
    return Step(stage, "stale" if reasons else "up to date", reasons, stamp)


def plan(config: Config, stages: Mapping[str, Stage], targets, force=()) -> list[Step]:
    """What bringing ``targets`` up to date takes: each needed stage, in order, and why it runs.

    Parameters
    ----------
    stages : mapping of name to Stage, in pipeline order
    targets : names of the stages asked for; the stages they depend on are included
    force : names of stages that run even when up to date
    """
    steps, will_run = [], set()
    for stage in _needed(stages, targets):
        step = Step(stage, "forced") if stage.name in force else _check(stage, config, will_run)
        if step.runs:
            will_run.add(stage.name)
        steps.append(step)
    return steps


def execute(config: Config, steps: list[Step], progress: bool = True) -> None:
    """Run the steps that need it, writing each stage's stamp once it has succeeded.

    Inputs are fingerprinted just before a stage runs, after the stages before it have
    written their outputs, so the stamp describes what the stage actually read. Each stage
    writes into a staging folder whose content replaces its previous outputs only when it
    succeeds (``pipeline.staging``).
    """
    remove_staging(config)  # left by a killed run
    if not any(step.runs for step in steps):
        log.info("up to date: %s; nothing to do", ", ".join(step.stage.name for step in steps))
        return
    for step in steps:
        stage = step.stage
        if not step.runs:
            log.info("%s", step)
            continue
        log.info("%s; running", step)
        inputs = stage.fingerprints(config)
        upstream = {name: (_read_stamp(config, name) or {}).get("id") for name in stage.upstream}
        started = time.perf_counter()
        _run_staged(stage, config, progress)
        seconds = time.perf_counter() - started
        if distributed_rank()[0]:  # under torchrun, rank 0 speaks for the run
            continue
        write_json(stamp_path(config, stage.name), {
            "stage": stage.name,
            "id": uuid.uuid4().hex,  # changes on every run, so later stages see that this one ran
            "finished": datetime.now().isoformat(sep=" ", timespec="seconds"),
            "seconds": round(seconds, 3),
            "inputs": inputs,
            "upstream": upstream,
            "outputs": stage.written(config),
        })
        outputs = ", ".join(_show(path) for path in stage.outputs(config) + stage.cache(config))
        log.info("%s: done in %.1f s -> %s", stage.name, seconds, outputs)


def _run_staged(stage: Stage, config: Config, progress: bool) -> None:
    """Run ``stage`` in a staging folder and move its outputs into place once it has succeeded."""
    rank, world = distributed_rank()
    if world > 1:  # the ranks share the run folder as it is; rank 0 alone writes there
        stage.run(config, progress)
        if not rank and stage.records_config:
            write_config(config, Path(config.run.dir))
        return
    outputs = stage.outputs(config)
    with staged(config, outputs, {".stamps", LOCK_NAME, LOG_NAME}) as in_staging:
        stage.run(in_staging, progress)
    commit(config, outputs, stage.records_config)


def clean(config: Config, stages: list[Stage], cache: bool = False) -> list[Path]:
    """Remove the outputs and stamps of ``stages`` (and their cached outputs with ``cache``).

    Returns the paths that existed and were removed.
    """
    paths = [
        path
        for stage in stages
        for path in [*stage.outputs(config), *(stage.cache(config) if cache else []), stamp_path(config, stage.name)]
    ]  # listed before anything is removed: the cached outputs are found through an output
    removed = [path for path in paths if path.exists()]
    for path in removed:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    with suppress(OSError):  # the stamps folder goes with its last stamp
        stamp_path(config, "any").parent.rmdir()
    log.info("clean: %s", f"removed {', '.join(map(_show, removed))}" if removed else "nothing to remove")
    return removed


@contextmanager
def run_lock(config: Config, command: str, wait: bool = True):
    """Hold the run folder's lock while stages run in it, so that two processes never
    interleave a run's outputs or stamps.

    A folder another process is running waits, saying once who holds it (pid, command,
    since when), or, with ``wait=False``, raises ``RunLocked`` saying the same. A lock left
    by a killed process is taken over. Under ``torchrun`` only rank 0 locks (it alone
    writes stamps; the other ranks run with it).
    """
    if distributed_rank()[0]:
        yield
        return
    run_dir = Path(config.run.dir)
    lock = FileLock(run_dir / LOCK_NAME, command=command)
    lock.hold(lambda holder: f"{_show(run_dir)} is in use by pid {holder.get('pid', '?')} on "
                             f"{holder.get('host', '?')} ({holder.get('command', '?')}) since "
                             f"{holder.get('started', '?')}", RunLocked, wait)
    try:
        with waiting(wait):  # the feature stores' locks, taken inside, wait alike
            yield
    finally:
        lock.release()


def _to_file(handler: logging.Handler, level: int, message: str, exc_info=None) -> None:
    """A log line for the log file only (the terminal shows its own, shorter, version)."""
    handler.handle(logging.makeLogRecord(
        {"name": __name__, "levelno": level, "levelname": logging.getLevelName(level),
         "msg": message, "exc_info": exc_info}
    ))


class _LogFile(logging.FileHandler):
    """The run's log file; when it cannot be written (a full disk) one warning line says so
    and the run goes on without it, instead of a traceback for every line."""

    failed = False

    def handleError(self, record: logging.LogRecord) -> None:
        self._warn(sys.exc_info()[1])

    def close(self) -> None:
        try:
            super().close()  # flushes what is buffered
        except OSError as error:
            self._warn(error)

    def _warn(self, error) -> None:
        if not self.failed:
            self.failed = True
            print(f"warning: {write_error(self.baseFilename, error) if isinstance(error, OSError) else error}; "
                  f"the run goes on without its log file", file=sys.stderr)


@contextmanager
def run_log(config: Config, command: str):
    """Append what happens inside to ``<run dir>/pipeline.log``: the command, the stage
    lines, warnings, and a failure with its traceback."""
    path = Path(config.run.dir) / LOG_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = _LogFile(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%Y-%m-%d %H:%M:%S"))
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    root.addHandler(handler)
    _to_file(handler, logging.INFO, f"$ {command}  (cnn-codes {__version__})")
    try:
        yield
        _to_file(handler, logging.INFO, "finished")
    except BaseException as error:
        _to_file(handler, logging.ERROR, f"failed: {type(error).__name__}: {error}", sys.exc_info())
        raise
    finally:
        root.removeHandler(handler)
        handler.close()
