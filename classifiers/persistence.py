"""Fitted models on disk: a joblib file and a JSON sidecar that says what it needs.

``save_model`` writes ``<name>.joblib`` and ``<name>.joblib.json``. The sidecar records
the feature spec (which backbone, weights, image preprocessing, tap and pooling made the
codes the model was fitted on), the class names, the metrics, library versions and the
sha256 of the joblib file. ``load_model`` checks that hash before unpickling and refuses
features made differently from the ones the model was fitted on: a model fed codes from
another tap or other weights predicts confidently and wrongly, without any error.

joblib files are pickles: loading one runs code from it. Load only models you made.
"""

from __future__ import annotations

import json
import platform
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

import joblib
import numpy as np

from features import spec_differences
from features.errors import FileInputError
from features.files import file_sha256, write_atomic

__all__ = ["ModelFileError", "save_model", "load_model", "sidecar_path"]

FORMAT_VERSION = 1


class ModelFileError(FileInputError):
    """A model file is missing, altered, or made for other features."""


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
