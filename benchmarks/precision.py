"""How far the codes of one feature store are from another's: bfloat16 against float32.

For every (tap, pooling) both stores have, over the rows (ids) both have done: the relative
difference of the whole dataset, ``||B - A|| / ||A||`` (Frobenius), and the median and
largest relative difference of single rows. Make the two stores with the same config, once
with ``features.precision = "bfloat16"``:

    python -m pipeline extract -c benchmarks/fashion-vgg16.toml
    python -m pipeline extract -c benchmarks/fashion-vgg16.toml --set features.precision='"bfloat16"'
    python benchmarks/precision.py FLOAT32.h5 BFLOAT16.h5
    python benchmarks/classifiers.py FLOAT32.h5 BFLOAT16.h5     # the accuracy each gives

Whole maps (pooling ``none``) are compared in their stored dtype, as float32.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, installed or not

from features import FeatureStore  # noqa: E402


def _rows(store: FeatureStore, tap: str, pooling: str) -> dict[str, np.ndarray]:
    return dict(zip(store.ids, store.codes(tap, pooling)[0]))


def differences(reference: Path, other: Path) -> list[dict]:
    """One row per (tap, pooling) the two stores share: relative differences of ``other`` to ``reference``."""
    rows = []
    with FeatureStore(reference) as first, FeatureStore(other) as second:
        for tap, pooling in sorted(set(first.available()) & set(second.available())):
            a, b = _rows(first, tap, pooling), _rows(second, tap, pooling)
            ids = sorted(a.keys() & b.keys())
            A = np.stack([a[key] for key in ids]).reshape(len(ids), -1).astype(np.float64)
            B = np.stack([b[key] for key in ids]).reshape(len(ids), -1).astype(np.float64)
            per_row = np.linalg.norm(B - A, axis=1) / np.maximum(np.linalg.norm(A, axis=1), 1e-12)
            rows.append({"tap": tap, "pooling": pooling, "rows": len(ids), "features": A.shape[1],
                         "whole": np.linalg.norm(B - A) / np.linalg.norm(A),
                         "median row": float(np.median(per_row)), "largest row": float(per_row.max())})
    return rows


def markdown(rows: list[dict], reference: Path, other: Path) -> str:
    lines = [f"Relative difference of `{other.name}` to `{reference.name}`:", "",
             "| tap | pooling | rows | features | whole dataset | median row | largest row |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['tap']} | {r['pooling']} | {r['rows']} | {r['features']} | {r['whole']:.2e} | "
              f"{r['median row']:.2e} | {r['largest row']:.2e} |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", type=Path, help="the float32 store")
    parser.add_argument("other", type=Path, help="the store to compare with it (bfloat16)")
    args = parser.parse_args(argv)
    print(markdown(differences(args.reference, args.other), args.reference, args.other))
    return 0


if __name__ == "__main__":
    sys.exit(main())
