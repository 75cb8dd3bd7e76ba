"""The stages from Python: ``pipeline.run`` brings a config's run up to date, like the command line.

Both go through ``bring_up_to_date``: the same lock on the run folder, the same log, the
same check of the names only torchvision and scikit-learn know, the same stages.
"""

from __future__ import annotations

import json
from pathlib import Path

from .config import Config, check_names, load_config
from .runner import Stage, execute, plan, run_lock, run_log
from .runfolder import read_json
from .stages import STAGES

__all__ = ["run", "bring_up_to_date"]


def bring_up_to_date(config: Config, stages: dict[str, Stage], targets: list[str], command: str, force=(),
                     progress: bool = True, wait: bool = True) -> None:
    """Run the stale stages among ``targets`` and the stages they read from, like make.

    ``force``: targets to rerun even when up to date. ``command`` is what the run folder's
    lock and log say is running; ``wait=False`` raises ``RunLocked`` when another process
    holds the folder instead of waiting for it.
    """
    with run_lock(config, command, wait=wait), run_log(config, command):
        steps = plan(config, stages, targets, force)  # after the lock: another run may have just finished
        if any(step.runs for step in steps):
            check_names(config)  # what only torchvision and scikit-learn know, before any work
        execute(config, steps, progress=progress)


def _toml(value) -> str:
    """A Python value as a TOML value, for a ``--set`` override."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(key))} = {_toml(item)}" for key, item in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    return json.dumps(str(value) if isinstance(value, Path) else value)


def run(config: str | Path, set: dict | None = None, force: bool = False, progress: bool = True):
    """Bring the run of the config file ``config`` up to date, as ``python -m pipeline run``
    does (only stale stages run), and return its results.

    Parameters
    ----------
    config : path
        A TOML config file.
    set : dict, optional
        Overrides by dotted key, as ``--set``: ``{"classifiers.models": ["logreg"]}``.
    force : bool
        Rerun every stage even when up to date.
    progress : bool
        Progress bars (a terminal or a notebook).

    Returns
    -------
    classifiers.Results
        The run's rows best first, with the fitted models loaded from the run folder.
    """
    from classifiers import Results

    overrides = [f"{key}={_toml(value)}" for key, value in (set or {}).items()]
    loaded = load_config(config, overrides)
    targets = list(STAGES)
    command = f"pipeline.run({str(config)!r}, set={set!r})"
    bring_up_to_date(loaded, STAGES, targets, command, targets if force else (), progress)
    run_dir = Path(loaded.run.dir)
    stores = read_json(run_dir / "features.json", "extract")
    return Results.load(run_dir, [entry["store"] for entry in stores.values()])
