"""Fused taps: the codes of several (tap, pooling) tables of one store side by side, as one cell.

One layer at a time leaves accuracy on the table: pool3/grid2 and pool4/grid2 side by side
gave an MLP 94.66 % on Fashion-MNIST 60k against 94.1 % for the best single table, and
DINOv2's linear evaluation concatenates its last four blocks' class tokens for the same
reason. A fused cell is a cell like any other: every classifier is tuned on it, its row
names it by its parts (``tap`` = the parts' taps joined by ``+``, ``pooling`` likewise, in
the same order: ``pool3+pool4``, ``grid2+grid2``), and its model takes the parts' codes
side by side, in that order. Its feature spec lists the parts (``parts``), so that
``predict`` computes each and a model is never fed a table it was not fitted on.

Each part goes through the preprocessing chain on its own (``make_part_preprocessing``),
optionally reduced by PCA to its share of a width budget, and is then scaled so that every
part weighs the same (the same total variance after ``standard``) whatever its width: a
pool4/grid2 part of 2,048 numbers does not drown a pool3/avg part of 256.

``classifiers.fuse`` says which tables: lists of ``"tap/pooling"`` names, or ``"all"``,
every pooled table of each backbone that has two or more (the default).
"""

from __future__ import annotations

import numpy as np

from features import MAP, spec_of_store
from features.errors import SettingError

__all__ = ["ENSEMBLE", "FUSE_ALL", "DEFAULT_FUSE", "parts_of", "joined_names", "fused_spec", "fusion_sets", "check_fuse",
           "make_part_preprocessing", "read_blocks"]

ENSEMBLE = "ensemble"
"""The ``classifier`` of a row that stacks cells (``classifiers.ensemble``; not a zoo entry):
its parts are its members' tables."""
FUSE_ALL = "all"
DEFAULT_FUSE = (FUSE_ALL,)
"""Fuse every pooled table of each backbone that has two or more (``classifiers.fuse``)."""


def parts_of(row: dict) -> list[tuple[str, str]]:
    """The ``(tap, pooling)`` tables a results row (or feature spec) was fitted on, in column order."""
    if row.get("parts"):
        return [tuple(part) for part in row["parts"]]
    taps, poolings = row["tap"].split("+"), row["pooling"].split("+")
    if len(taps) != len(poolings):
        raise ValueError(f"a fused row's tap {row['tap']!r} and pooling {row['pooling']!r} name different numbers "
                         f"of parts")
    return list(zip(taps, poolings))


def joined_names(parts: list[tuple[str, str]]) -> tuple[str, str]:
    """``(tap, pooling)`` naming ``parts``: each joined by ``+`` (one part: its own names)."""
    return "+".join(tap for tap, _ in parts), "+".join(pooling for _, pooling in parts)


def fused_spec(attrs: dict, parts: list[tuple[str, str]]) -> dict:
    """The feature spec of ``parts`` of a store (``FeatureStore.attrs``): one part's own spec,
    or the joined names with the parts listed."""
    if len(parts) == 1:
        return spec_of_store(attrs, *parts[0])
    return {**spec_of_store(attrs, *joined_names(parts)), "parts": [list(part) for part in parts]}


def check_fuse(fuse) -> None:
    """Raise ``SettingError`` (a ``ValueError``) unless ``fuse`` is a list of ``"all"`` and lists
    of two or more ``"tap/pooling"`` names (pooled codes: whole maps do not fuse)."""
    if not isinstance(fuse, (list, tuple)):
        raise SettingError(f"{fuse!r} must be a list, e.g. [[\"pool3/grid2\", \"pool4/grid2\"], \"all\"] (or [] for none)")
    for item in fuse:
        if item == FUSE_ALL:
            continue
        if isinstance(item, str) or not isinstance(item, (list, tuple)):
            raise SettingError(f"{item!r} is neither \"all\" nor a list of \"tap/pooling\" names such as "
                               f"[\"pool3/grid2\", \"pool4/grid2\"]")
        if len(set(item)) < 2:
            raise SettingError(f"{list(item)} fuses fewer than two tables; name two or more \"tap/pooling\" names")
        for name in item:
            tap, _, pooling = str(name).partition("/")
            if not tap or not pooling:
                raise SettingError(f"{name!r} in {list(item)} is not a \"tap/pooling\" name such as \"pool3/grid2\"")
            if pooling == MAP:
                raise SettingError(f"{name!r}: whole maps (pooling \"{MAP}\") cannot be fused; name pooled codes")


def fusion_sets(fuse, tables: list[tuple[str, str]], available: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """The fused cells of one backbone: each a list of two or more ``(tap, pooling)``.

    Parameters
    ----------
    fuse : list
        ``classifiers.fuse`` (``check_fuse``).
    tables : list of (tap, pooling)
        The tables benchmarked on their own, in order: what ``"all"`` fuses (whole maps left out).
    available : list of (tap, pooling)
        Every complete table of the store: a named list needs all its parts there, else it
        does not apply to this backbone.
    """
    pooled = [key for key in tables if key[1] != MAP]
    sets = []
    for item in fuse:
        parts = pooled if item == FUSE_ALL else [tuple(name.split("/", 1)) for name in dict.fromkeys(item)]
        if len(parts) >= 2 and all(part in available for part in parts) and parts not in sets:
            sets.append(parts)
    return sets


def _scale(X: np.ndarray, factor: float) -> np.ndarray:
    return X * np.float32(factor)


def make_part_preprocessing(chain: list[str], part_widths: list[tuple[str, int]], width: int | None = None,
                            random_state: int = 0):
    """The preprocessing of fused codes: a ``ColumnTransformer`` that puts each part (a
    ``(name, columns)`` of ``part_widths``, side by side) through ``chain`` on its own, then,
    with a ``width`` budget, through PCA to its share of it (in proportion to its columns),
    then scales it by ``sqrt(mean width / its width)``: after ``standard`` every part has
    the same total variance, and parts of equal width are left as they are."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    from .preprocessing import make_preprocessing

    total = sum(columns for _, columns in part_widths)
    kept = [min(columns, max(1, width * columns // total)) if width else columns for _, columns in part_widths]
    mean = sum(kept) / len(kept)
    transformers, start = [], 0
    for (name, columns), out in zip(part_widths, kept):
        steps = make_preprocessing([*chain, *([f"pca{out}"] if out < columns else [])], random_state)
        steps.append(("weight", FunctionTransformer(_scale, kw_args={"factor": float(np.sqrt(mean / out))},
                                                    feature_names_out="one-to-one")))
        transformers.append((name, Pipeline(steps), slice(start, start + columns)))
        start += columns
    return ColumnTransformer(transformers, sparse_threshold=0)


def read_blocks(store, parts: list[tuple[str, str]], positions: np.ndarray, max_rows: int):
    """The codes of ``parts`` side by side for the store rows at ``positions``, in file order,
    as ``(X (n_rows, sum of widths) float32, y)`` blocks of at most ``max_rows`` rows, one
    block in memory at a time."""
    if len(parts) == 1:  # one table as the store gives it (a map keeps its shape)
        yield from store.blocks(*parts[0], positions, max_rows)
        return
    positions = np.sort(np.asarray(positions, dtype=np.int64))
    widths = [int(np.prod(store.row_shape(*part))) for part in parts]
    for start in range(0, len(positions), max_rows):
        rows = positions[start:start + max_rows]
        X = np.empty((len(rows), sum(widths)), np.float32)
        column = 0
        for part, width in zip(parts, widths):
            # one block of exactly these rows (max_rows = their number), in file order
            (codes, y), = store.blocks(*part, rows, len(rows))
            X[:, column:column + width] = codes.reshape(len(rows), -1)
            column += width
        yield X, y
