"""predict: new images -> what a fitted model says they are, as a CSV and a short table.

The model (the run's best by default) records in its sidecar the backbone, tap, pooling
and preprocessing it was fitted on. The images go through exactly those, with the
config's weights, and the sidecar is checked against them before any image is read:
codes from other weights would give confident nonsense, not an error.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np

from classifiers import load_model, parts_of, predict_table, read_sidecar
from features import ImageFiles, Recipe, compute_codes, resolve_weights
from features.files import write_atomic

from .config import Config
from .runfolder import chosen_model, predictions_path

__all__ = ["predict"]

log = logging.getLogger(__name__)

SHOWN_ROWS = 20
"""Rows of the table printed on standard output; the CSV has them all."""


def predict(config: Config, images: list[str], model: str | None = None, out: str | None = None,
            top_k: int = 5, progress: bool = True) -> list[dict]:
    """Predict the class of every image in ``images`` (files, or folders searched recursively).

    Returns one dict per image, in the order found: ``path``, ``predicted``,
    ``probability`` (None for models without probabilities), ``top_k`` pairs and
    ``error`` (why an image could not be read; such an image gets no prediction but does
    not stop the others). The same rows go to the CSV ``out``.
    """
    source = ImageFiles(images)
    model_path = chosen_model(config, model)
    sidecar = read_sidecar(model_path)
    spec = sidecar["spec"]
    tap, pooling = spec["tap"], spec["pooling"]
    parts = parts_of(spec)  # a fused or ensemble model takes several tables side by side
    # the images get the model's recipe with the config's weights; the spec check refuses other weights by name
    weights = resolve_weights(spec["backbone"], config.features.weights, seed=config.features.seed)
    recipe = Recipe.from_spec(spec, weights)
    fused = {"parts": [list(part) for part in parts]} if len(parts) > 1 else {}
    estimator, _ = load_model(model_path, {**recipe.spec(tap, pooling), **fused})
    log.info("predict: %d images with %s (%s %s/%s, %s)", len(source), model_path, spec["backbone"], tap, pooling,
             weights.identity)
    codes, failed = compute_codes(source, recipe, taps=list(dict.fromkeys(part[0] for part in parts)),
                                  poolings=list(dict.fromkeys(part[1] for part in parts)),
                                  cache_dir=config.features.cache_dir, runtime=config.features.runtime(progress))
    errors = dict(failed)
    X = codes[parts[0]] if len(parts) == 1 else np.hstack([codes[part] for part in parts])
    predicted = iter(predict_table(estimator, X, sidecar["classes"], top_k) if len(errors) < len(source) else [])
    rows = []
    for sample_id in source.ids:
        if sample_id in errors:
            log.warning("predict: no prediction for %s: %s", sample_id, errors[sample_id])
            rows.append({"path": sample_id, "predicted": "", "probability": None, "top_k": [],
                         "error": errors[sample_id]})
        else:
            rows.append({"path": sample_id, **next(predicted), "error": ""})
    out_path = predictions_path(config, out)
    write_atomic(out_path, lambda partial: _write_csv(rows, partial, top_k))
    _print_table(rows, out_path)
    return rows


def _write_csv(rows: list[dict], path: Path, top_k: int) -> None:
    """Columns ``path, predicted, probability, class_1, score_1, ... class_k, score_k, error``."""
    ranks = range(1, top_k + 1)
    header = ["path", "predicted", "probability", *[f"{kind}_{rank}" for rank in ranks for kind in ("class", "score")],
              "error"]
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        for row in rows:
            ranked = [value for pair in row["top_k"] for value in pair]
            ranked += [""] * (2 * top_k - len(ranked))
            probability = "" if row["probability"] is None else f"{row['probability']:.4f}"
            writer.writerow([row["path"], row["predicted"], probability,
                             *[f"{value:.4f}" if isinstance(value, float) else value for value in ranked],
                             row["error"]])


def _print_table(rows: list[dict], out_path: Path) -> None:
    width = max(len("path"), *(len(row["path"]) for row in rows[:SHOWN_ROWS]))
    print(f"{'path':<{width}}  {'predicted':<16}  probability (or score)")
    for row in rows[:SHOWN_ROWS]:
        if row["error"]:
            print(f"{row['path']:<{width}}  (not readable: {row['error']})")
            continue
        if row["probability"] is not None:
            confidence = f"{100 * row['probability']:.1f} %"
        else:  # ridge, SVMs: the decision function's value of the predicted class
            confidence = f"score {row['top_k'][0][1]:.3f}" if row["top_k"] else "-"
        print(f"{row['path']:<{width}}  {row['predicted']:<16}  {confidence}")
    if len(rows) > SHOWN_ROWS:
        print(f"... {len(rows) - SHOWN_ROWS} more in {out_path}")
