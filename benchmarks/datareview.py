"""What the report's data review costs, and how its plain scikit-learn search compares with
cleanlab's Datalab on the same codes.

    python benchmarks/datareview.py benchmarks/cache/fashion-mnist-vgg16-*.h5 --tap pool4 --pooling avg
    python benchmarks/datareview.py STORE --tap pool4 --pooling avg --scale 70000   (codes repeated with noise)
    python benchmarks/datareview.py STORE ... --datalab   (needs `pip install "cleanlab[datalab]"`: Hugging Face datasets)

Times, on one cell of a feature store: reading and reducing the codes, the neighbour search
(``classifiers.review_cell``), the t-SNE of the map (``MAP_POINTS`` images at most) and the
map's sprite of thumbnails (``--images`` names the image folder the store was made from).
``--scale N`` reviews N rows made of the store's codes plus a little noise, which costs what
N real images would cost in the search and the map (not in reading the store). With
``--datalab`` it also runs Datalab's ``near_duplicate`` and ``outlier`` checks on the same
reduced codes, twice (the first call imports its dependencies), with the plain search
alone in between, and says how far the two agree.
``--out benchmarks/RESULTS.md`` appends the table, dated.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, installed or not

from classifiers import MAP_POINTS, map_codes, review_cell, review_codes, sprite_uri  # noqa: E402
from features import FeatureStore, ImageFolder  # noqa: E402


def _timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def _datalab(reduced: np.ndarray, labels: np.ndarray):
    """Datalab's near-duplicate pairs and outliers on ``reduced`` (cosine, its defaults)."""
    from cleanlab import Datalab

    lab = Datalab(data={"label": labels}, label_name="label", verbosity=0)
    lab.find_issues(features=reduced, issue_types={"near_duplicate": {}, "outlier": {}})
    duplicates = lab.get_issues("near_duplicate")
    pairs = {(min(row, other), max(row, other)) for row, others in
             zip(np.flatnonzero(duplicates["is_near_duplicate_issue"]),
                 duplicates["near_duplicate_sets"][duplicates["is_near_duplicate_issue"]]) for other in others}
    outliers = set(np.flatnonzero(lab.get_issues("outlier")["is_outlier_issue"]).tolist())
    return pairs, outliers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("store")
    parser.add_argument("--tap", required=True)
    parser.add_argument("--pooling", default="avg")
    parser.add_argument("--images", help="the image folder of the store, for the sprite's cost")
    parser.add_argument("--scale", type=int, help="review this many rows made of the codes plus noise")
    parser.add_argument("--datalab", action="store_true")
    parser.add_argument("--out")
    args = parser.parse_args()

    rows = []
    with FeatureStore(args.store) as codes:
        cell, review_seconds = _timed(review_cell, codes, args.tap, args.pooling)
    reduced, splits, labels = cell.found.reduced, cell.splits, cell.labels
    found = cell.found
    if args.scale:  # real codes, repeated with noise: what `scale` images cost in the search and the map
        rng = np.random.default_rng(0)
        picks = rng.integers(0, len(reduced), args.scale)
        reduced = reduced[picks] + rng.normal(0, 0.05, (args.scale, reduced.shape[1])).astype(np.float32)
        reduced /= np.linalg.norm(reduced, axis=1, keepdims=True)
        splits, labels = splits[picks], labels[picks]
        found, review_seconds = _timed(review_codes, reduced, splits)
    shown = np.random.default_rng(0).permutation(len(reduced))[:MAP_POINTS]
    _, map_seconds = _timed(map_codes, reduced[shown])
    sprite_seconds = float("nan")
    if args.images:
        source = ImageFolder(args.images)
        index = {sample_id: position for position, sample_id in enumerate(source.ids)}
        ids = [cell.ids[row % len(cell.ids)] for row in shown]
        _, sprite_seconds = _timed(lambda: sprite_uri((source.load(index[sample_id]) for sample_id in ids), len(ids)))
    rows.append(("plain (scikit-learn)", len(reduced), len(found.sample), review_seconds, map_seconds, sprite_seconds,
                 len(found.first), len(found.outliers), ""))
    if args.datalab:
        mine = set(zip(found.first.tolist(), found.second.tolist()))
        (pairs, outliers), first_seconds = _timed(_datalab, reduced, labels)  # with its imports (datasets, pandas)
        _, again = _timed(review_codes, reduced, splits)  # interleaved: the plain search alone, between two Datalabs
        _, datalab_seconds = _timed(_datalab, reduced, labels)
        agree = (f"pairs in both {len(mine & pairs)}, outliers in both {len(outliers & set(found.outliers.tolist()))};"
                 f" its first call (imports) {first_seconds:.1f} s; the plain search alone, between the two "
                 f"Datalab calls, {again:.1f} s")
        rows.append(("Datalab (near_duplicate, outlier)", len(reduced), len(reduced), datalab_seconds, float("nan"),
                     float("nan"), len(pairs), len(outliers), agree))

    header = ("| search | images | searched all against all | search s | map (t-SNE) s | sprite s | pairs | "
              "outliers | note |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    lines = [f"| {name} | {n:,} | {sample:,} | {search:.1f} | {tsne:.1f} | {sprite:.1f} | {pairs:,} | {outliers:,} | "
             f"{note} |" for name, n, sample, search, tsne, sprite, pairs, outliers, note in rows]
    title = (f"### Data review cost, {datetime.date.today()}: {args.store} {args.tap}/{args.pooling}"
             + (f", {args.scale:,} rows of codes plus noise" if args.scale else "")
             + f" ({platform.processor() or platform.machine()})")
    table = "\n".join([title, "", header, *lines, ""])
    print(table)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as file:
            file.write("\n" + table)


if __name__ == "__main__":
    main()
