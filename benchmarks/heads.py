"""The MLP head on one cell of a store, in other settings: what moves its accuracy and its fit time.

Fits the zoo's ``mlp-head`` on the codes of ``--parts`` of a feature store (two or more
parts: side by side, each standardised on its own, as a fused cell), scored as model
selection scores it (``classifiers.selection.select_model``: from ``holdout_rows`` images on
the shared held-out tenth, where the head stops early; below, by k folds), once per
``--settings`` entry: a JSON object of the head's parameters over the zoo's
(``'{"precision": "bfloat16"}'``, ``'{"max_iter": 40}'``). Two keys are not the head's:
``"tuning"``, an object of ``Tuning`` fields (``{"fuse_width": 1024}``, ``{"preprocessing":
["standard"]}``), and ``"refit": true``, which fits the head on every training row with no
held-out fold (so no early stopping and no selection score), as the linear-probe protocols
refit on train + val. Prints the selection score, the test accuracy and the seconds of
each, in the order given, in one process, so that ratios of seconds are measured on one
machine at one time; ``--vote-settings`` adds the soft vote of the settings' heads so far
after each (seeds, say: ``'{"random_state": 1}'``). ``--out benchmarks/RESULTS.md`` also
appends the tables there.

``--vote RUN/models/BACKBONE`` also scores the soft vote (mean probabilities) of every
combination of that run folder's fitted torch heads on those parts, on the held-out rows
the heads watched and on the test split: the held-out estimate of an ensemble that costs
no fit at scale.

    python benchmarks/heads.py benchmarks/cache/fashion-mnist-full-vgg16-*.h5 \\
        --parts pool3/avg pool3/grid2 pool4/avg pool4/grid2 \\
        --settings '{}' '{"precision": "bfloat16"}' '{"precision": "bfloat16", "max_iter": 40}'

Not a test: minutes per setting at 60,000 images on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, installed or not

from benchmarks.extraction import publish  # noqa: E402
from benchmarks.precision import cpu_line  # noqa: E402
from classifiers.cells import load_fused_codes  # noqa: E402
from classifiers.fusion import joined_names, parts_of  # noqa: E402
from classifiers.persistence import load_model, read_sidecar  # noqa: E402
from classifiers.selection import select_model  # noqa: E402
from classifiers.tuning import Tuning  # noqa: E402
from classifiers.zoo import make_model  # noqa: E402

HEAD = "mlp-head"


def settings_rows(codes, settings: list[str], vote: bool = False) -> list[str]:
    """One Markdown row per setting: the selection score, test accuracy, epochs and seconds
    (with ``vote``, after each a row for the soft vote of the heads so far)."""
    rows, held, test = [], [], []
    for text in settings:
        setting = json.loads(text)
        tuning, refit = Tuning(**setting.pop("tuning", {})), setting.pop("refit", False)
        fixed = {key: [tuple(value)] if isinstance(value, list) else value  # a JSON list: one tuple, not a grid
                 for key, value in setting.items()}
        started = time.perf_counter()
        if refit:
            model = make_model(HEAD, tuning.preprocessing, tuning.seed, part_widths=codes.part_widths,
                               fuse_width=tuning.fuse_width, params={**fixed, "validation_fraction": 0.0})
            model.fit(codes.X_fit, codes.y_fit)
            held_out = None
        else:
            chosen = select_model(HEAD, codes.X_fit, codes.y_fit, replace(tuning, grid={HEAD: fixed}),
                                  codes.groups_fit, views=codes.views_fit, part_widths=codes.part_widths)
            model, held_out = chosen.model, chosen.model[-1].validation_rows_
            if codes.views_fit is not None:  # scored on its plain images, as the selection score
                held_out = held_out[~codes.views_fit[held_out]]
        seconds = time.perf_counter() - started
        classes, head = model.classes_, model[-1]
        test.append(model.predict_proba(codes.X_test))
        score = "(refit)"
        if held_out is not None:
            held.append((held_out, model.predict_proba(codes.X_fit[held_out])))
            score = _percent(classes, held[-1][1], codes.y_fit[held_out])
        new = [f"| `{text}` | {score} | {_percent(classes, test[-1], codes.y_test)} | "
               f"{head.n_iter_} (best {head.best_epoch_}) | {seconds:.0f} |"]
        if vote and len(test) > 1:  # held out: only where every head held out the same rows
            same = len(held) == len(test) and all(np.array_equal(watched, held[0][0]) for watched, _ in held)
            score = _percent(classes, np.mean([p for _, p in held], 0), codes.y_fit[held[0][0]]) if same else ""
            new.append(f"| soft vote of the {len(test)} above | {score} | "
                       f"{_percent(classes, np.mean(test, 0), codes.y_test)} | | |")
        print(*new, sep="\n", file=sys.stderr, flush=True)
        rows += new
    return rows


def _percent(classes: np.ndarray, probabilities: np.ndarray, y: np.ndarray) -> str:
    """The accuracy, in per cent to two decimals, of the most probable classes against ``y``."""
    return f"{100 * np.mean(classes[probabilities.argmax(1)] == y):.2f}"


def vote_rows(codes, part_widths: list[tuple[str, int]], folder: Path) -> list[str]:
    """Markdown rows: the soft vote of each combination of ``folder``'s heads on the parts of
    ``codes`` (``part_widths``: each part's name and width, in column order)."""
    widths = [width for _, width in part_widths]
    columns = dict(zip([name for name, _ in part_widths], np.split(np.arange(sum(widths)), np.cumsum(widths)[:-1])))
    held, test, held_rows = {}, {}, None
    for path in sorted(folder.glob("*.joblib")):
        sidecar = read_sidecar(path)
        parts = ["/".join(part) for part in parts_of(sidecar["spec"])]
        if sidecar["classifier"] != HEAD or not set(parts) <= set(columns):
            continue
        model, _ = load_model(path)
        take = np.concatenate([columns[part] for part in parts])
        rows = model[-1].validation_rows_
        if held_rows is not None and not np.array_equal(rows, held_rows):
            raise SystemExit(f"{path} watched other held-out rows than the heads before it")
        held_rows = rows
        name = " + ".join(parts)
        held[name] = model.predict_proba(codes.X_fit[rows][:, take])
        test[name] = model.predict_proba(codes.X_test[:, take])
    if held_rows is None:
        raise SystemExit(f"no {HEAD} of these parts in {folder}")
    results = []
    for size in range(1, len(held) + 1):
        for members in itertools.combinations(held, size):
            on_held = np.mean(np.argmax(np.mean([held[m] for m in members], 0), 1) == codes.y_fit[held_rows])
            on_test = np.mean(np.argmax(np.mean([test[m] for m in members], 0), 1) == codes.y_test)
            results.append((on_held, on_test, members))
    results.sort(key=lambda result: (-result[0], len(result[2])))
    return [f"| {'; '.join(f'`{m}`' for m in members)} | {100 * on_held:.2f} | {100 * on_test:.2f} |"
            for on_held, on_test, members in results]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("store", type=Path)
    parser.add_argument("--parts", nargs="+", required=True, help="tap/pooling, e.g. pool4/grid2")
    parser.add_argument("--settings", nargs="*", default=[], help="JSON objects of the head's parameters")
    parser.add_argument("--vote-settings", action="store_true", help="also the soft vote of the settings' heads")
    parser.add_argument("--vote", type=Path, help="a run folder's models/BACKBONE: soft votes of its heads")
    parser.add_argument("--out", type=Path, help="also append the tables here (benchmarks/RESULTS.md)")
    args = parser.parse_args(argv)
    parts = [tuple(part.split("/")) for part in args.parts]
    codes = load_fused_codes(args.store, parts)
    tap, pooling = joined_names(parts)
    lines = [f"`{HEAD}` on {tap} / {pooling} of {args.store.name}: {len(codes.y_fit)} training and "
             f"{len(codes.y_test)} test rows. {cpu_line()}", ""]
    if args.settings:
        lines += ["| setting (over the zoo's) | selection score % | test % | epochs | seconds |",
                  "| --- | --- | --- | --- | --- |", *settings_rows(codes, args.settings, args.vote_settings), ""]
    if args.vote:
        part_widths = codes.part_widths or [(args.parts[0], codes.X_fit.shape[1])]
        lines += ["| soft vote of | held-out % | test % |", "| --- | --- | --- |",
                  *vote_rows(codes, part_widths, args.vote)]
    publish("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
