"""What the stages share about the run folder: where it is, reading an earlier stage's
output, the model ``predict`` uses and where its predictions go.

The stage modules (``pipeline.extract``, ``fit``, ``report``, ``predict``) and the stages'
declarations (``pipeline.stages``, which imports those modules when a stage runs) both
import from here; this module imports none of them.
"""

from __future__ import annotations

import json
from pathlib import Path

from features.errors import MissingFileError

from .config import Config

__all__ = ["PREDICTIONS_NAME", "StageInputMissing", "chosen_model", "predictions_path", "read_json", "run_folder"]

PREDICTIONS_NAME = "predictions.csv"


class StageInputMissing(MissingFileError):
    """A stage needs the outputs of an earlier stage that has not run."""


def read_json(path: Path, stage: str):
    """The JSON file ``path`` that ``stage`` writes, or ``StageInputMissing`` saying to run it."""
    if not path.is_file():
        raise StageInputMissing(f"{path} is missing; run the {stage} stage first (or `run` for all stages)")
    return json.loads(path.read_text())


def run_folder(config: Config) -> Path:
    """The run folder, made if needed (the runner writes the resolved config beside the outputs)."""
    run_dir = Path(config.run.dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def chosen_model(config: Config, model: str | None) -> Path:
    """``model``, or the run's best model (from ``results.json``)."""
    if model:
        return Path(model)
    results = Path(config.run.dir) / "results.json"
    if not results.is_file():
        raise StageInputMissing(f"{results} is missing; run fit first, or name a model with --model")
    return Path(config.run.dir) / json.loads(results.read_text())["best_model"]


def predictions_path(config: Config, out: str | None) -> Path:
    """The CSV that ``predict`` writes: ``out``, or ``predictions.csv`` in the run folder."""
    return Path(out) if out else Path(config.run.dir) / PREDICTIONS_NAME
