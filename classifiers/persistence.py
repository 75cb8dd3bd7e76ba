"""Fitted models on disk: a joblib file and a JSON sidecar that says what it needs.

``save_model`` writes ``<name>.joblib`` and ``<name>.joblib.json``. The sidecar records
the feature spec (which backbone, weights, image preprocessing, tap and pooling made the
codes the model was fitted on), the class names, the metrics, library versions and the
sha256 of the joblib file. ``load_model`` checks that hash before unpickling and refuses
features made differently from the ones the model was fitted on: a model fed codes from
another tap or other weights predicts confidently and wrongly, without any error.

``save_results`` and ``load_results`` do this for every cell of a benchmark and keep the
results table beside them in ``results.json``: what ``Results.save`` and ``Results.load``
(and so the ``fit`` stage) write and read.

joblib files are pickles: loading one runs code from it. Load only models you made.
"""

from __future__ import annotations

import json
import platform
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

import joblib
import numpy as np

from features import spec_differences
from features.errors import FileInputError
from features.files import file_sha256, write_atomic, write_json

if TYPE_CHECKING:
    from .cells import Cell

__all__ = ["ModelFileError", "RESULTS_FILE", "save_model", "load_model", "read_sidecar", "sidecar_path", "save_results",
           "load_results"]

FORMAT_VERSION = 1
RESULTS_FILE = "results.json"
"""The results table of a run folder: the rows best first, the classes, the best model, the seed."""


class ModelFileError(FileInputError):
    """A model file is missing, altered, or made for other features (an ``OSError``, as before)."""


def sidecar_path(path: str | Path) -> Path:
    """``model.joblib`` -> ``model.joblib.json``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def _plain(value):
    """``value`` with numpy scalars made JSON-serialisable."""
    return value.item() if isinstance(value, np.generic) else value


def save_model(estimator, path: str | Path, spec: dict, metrics: dict, **extra) -> Path:
    """Write ``estimator`` with joblib to ``path`` and its sidecar beside it.

    Parameters
    ----------
    spec : dict
        The feature spec (``features.Recipe.spec``, ``features.spec_of_store``), plus anything else that must match at load
        time; also n_features is taken from the estimator.
    metrics : dict
        Test metrics (``score``), stored as they are.
    **extra
        More sidecar fields, e.g. ``classes``, ``classifier``, ``params``, ``preprocessing``.

    Returns
    -------
    Path of the sidecar. Both files are written under temporary names and renamed, the
    sidecar last, so a sidecar always describes a whole joblib file.
    """
    path = Path(path)
    write_atomic(path, lambda partial: joblib.dump(estimator, partial))
    sidecar = {
        "format_version": FORMAT_VERSION,
        "model": path.name,
        "sha256": file_sha256(path),
        "bytes": path.stat().st_size,
        "spec": {**spec, "n_features": int(estimator.n_features_in_)},
        **extra,
        "metrics": metrics,
        "versions": {
            "python": platform.python_version(),
            **{name: version(name) for name in ("scikit-learn", "torch", "numpy", "joblib")},
        },
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    target = sidecar_path(path)
    write_atomic(target, lambda partial: partial.write_text(json.dumps(sidecar, indent=2, default=_plain) + "\n"))
    return target


def read_sidecar(path: str | Path) -> dict:
    """The sidecar of the model at ``path``: what it was fitted on, without unpickling it.

    Raises ``ModelFileError`` when it is missing or not JSON.
    """
    try:
        return json.loads(sidecar_path(path).read_text())
    except (OSError, ValueError) as error:
        raise ModelFileError(f"cannot read the sidecar of model {path}: {error}; fit the model again") from error


def load_model(path: str | Path, expected_spec: dict | None = None):
    """The estimator saved at ``path`` and its sidecar, after checking both.

    Parameters
    ----------
    expected_spec : dict, optional
        The spec of the codes that will be fed to the model (``features.Recipe.spec``);
        it must equal the sidecar's both ways (``features.spec_differences``).

    Returns
    -------
    estimator, sidecar : the unpickled estimator and the sidecar as a dict

    Raises
    ------
    ModelFileError
        The joblib file or its sidecar is missing, the file's sha256 differs from the
        sidecar's, or the feature spec differs (the message names each differing field).
    """
    path = Path(path)
    sidecar = read_sidecar(path)
    if not path.is_file():
        raise ModelFileError(f"model file {path} is missing; fit the model again")
    if file_sha256(path) != sidecar["sha256"]:
        raise ModelFileError(
            f"model file {path} does not match the sha256 in {sidecar_path(path).name}: it was changed or "
            f"replaced after fitting; refusing to unpickle it (fit the model again)"
        )
    details = "; ".join(spec_differences(sidecar["spec"], expected_spec)) if expected_spec else ""
    if details:
        raise ModelFileError(
            f"model {path} was fitted on other features than those given ({details}); "
            f"extract the features it needs or pick a model fitted on these"
        )
    return joblib.load(path), sidecar


def save_results(run_dir: str | Path, cells: list[Cell], classes: list[str], seed: int) -> dict:
    """Write each cell's model as ``models/<backbone>/<tap>-<pooling>-<classifier>.joblib``
    with its sidecar (``save_model``), then ``results.json``; each cell's row gets its
    ``model`` (the path relative to ``run_dir``) and ``model_bytes``. Returns what
    ``results.json`` holds (``write_report`` takes it).

    Parameters
    ----------
    cells : list of Cell
        Best first (``Results.cells``); the first is ``results.json``'s ``best_model``.
    classes : list of str
        The class names, in label order.
    seed : int
        The searches' seed (``Tuning.seed``), which the report's suspect-label folds reuse.
    """
    from .metrics import METRICS  # loads scikit-learn: not at import, as predict's up-to-date check needs none

    run_dir = Path(run_dir)
    for cell in cells:
        path = run_dir / "models" / cell.backbone / f"{cell.tap}-{cell.pooling}-{cell.classifier}.joblib"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_model(cell.model, path, cell.spec, {key: cell.row.get(key) for key in ("cv_accuracy", *METRICS)},
                   classifier=cell.classifier, params=cell.row["params"],
                   preprocessing=[step for step, _ in cell.model.steps[:-1]], classes=classes)
        cell.row.update(model=path.relative_to(run_dir).as_posix(), model_bytes=path.stat().st_size)
    results = {"best_model": cells[0].row["model"], "classes": classes, "seed": seed,
               "rows": [cell.row for cell in cells]}
    write_json(run_dir / RESULTS_FILE, results)
    return results


def load_results(run_dir: str | Path) -> tuple[dict, list[tuple[object, dict]]]:
    """The content of ``run_dir``'s ``results.json`` (``save_results``) and, for each of its
    rows, the model (checked by ``load_model``) and the feature spec it was fitted on (its
    sidecar's, without ``n_features``)."""
    run_dir = Path(run_dir)
    saved = json.loads((run_dir / RESULTS_FILE).read_text())
    models = []
    for row in saved["rows"]:
        model, sidecar = load_model(run_dir / row["model"])
        models.append((model, {key: value for key, value in sidecar["spec"].items() if key != "n_features"}))
    return saved, models
