"""A look at the data through its codes: near-duplicates, train/test leaks, outliers, class
balance and a 2-D map, before any number of the table is trusted.

The codes that the classifiers read are also what image-collection tools (FiftyOne Brain,
cleanlab's Datalab) compute first to inspect a collection, so the review reuses them and
runs no CNN. Each image (augmented views are left out) is reduced to ``COMPONENTS``
principal components of its L2-normalised codes and normalised again, so that the
Euclidean distance of two rows gives their cosine distance; an exact nearest-neighbour
search (scikit-learn, brute force) then finds every image's ``NEIGHBOURS`` nearest ones.

- A **near-duplicate pair** is two images closer than ``DUPLICATE_FACTOR`` times the median
  distance of an image to its nearest neighbour: a threshold relative to the codes' own
  scale (a shallow tap spreads images less than a deep one), the rule and default of
  Datalab's ``near_duplicate`` issue. A pair across train (or val) and test is a **leak**.
- An **outlier** is an image whose distance to its ``NEIGHBOURS``-th neighbour is beyond
  Tukey's fence of all those distances (third quartile + 1.5 x interquartile range):
  the k-th rather than the first neighbour, so that a handful of alike strays (a few
  scans among photos) still stand out.
- **Class balance** counts images per class and split, and flags a class with fewer
  training images than ``RARE_CLASS`` times the mean (Datalab's ``class_imbalance`` rule).
- **The map** is a t-SNE (scikit-learn) of the same principal components, for at most
  ``MAP_POINTS`` images.

Beyond ``MAX_IMAGES`` images, pairs within splits and outliers are searched in a random
sample of that many (an all-against-all search grows with the square of the images),
while leaks stay exhaustive: every test image against every training image.

``benchmarks/datareview.py`` measures this against Datalab on the same codes (why the plain
search: docs/report.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.neighbors import NearestNeighbors

from features.errors import SettingError

__all__ = ["COMPONENTS", "NEIGHBOURS", "DUPLICATE_FACTOR", "RARE_CLASS", "MAP_POINTS", "MAX_IMAGES", "DataReview",
           "review_codes", "class_counts", "map_codes", "reduce_codes"]

COMPONENTS = 50
"""Principal components the codes are reduced to (the usual input size of t-SNE)."""
NEIGHBOURS = 10
"""Neighbours found per image; an outlier's score is the distance to the last of them."""
DUPLICATE_FACTOR = 0.13
"""A pair closer than this times the median nearest-neighbour distance is a near-duplicate."""
OUTLIER_FENCE = 1.5
"""Interquartile ranges above the third quartile of the scores where outliers begin."""
RARE_CLASS = 0.1
"""A class with fewer training images than this times the mean per class is flagged."""
FIT_ROWS = 5_000
"""Rows the principal components are fitted on (a sample; all rows are then projected)."""
MAP_POINTS = 2_000
"""Images shown on the map at most (a sample beyond that)."""
TSNE_ITERATIONS = 500
"""t-SNE's iterations (its default is 1,000): half the cost, and a few thousand points settle by then."""
MAX_IMAGES = 20_000
"""Images searched all against all at most; beyond, a sample of them (leaks stay exhaustive)."""


@dataclass
class DataReview:
    """What ``review_codes`` found; rows are positions in the codes it was given.

    ``first``, ``second`` and ``distance`` are the near-duplicate pairs, closest first
    (``first < second``); ``outliers`` the outlying rows, most isolated first; ``sample``
    the rows searched for pairs within splits and for outliers (all rows, up to
    ``MAX_IMAGES``); ``score`` each sampled row's cosine distance to its ``neighbours``-th
    nearest neighbour (NaN for the others);
    ``threshold`` the distance under which a pair is a near-duplicate (``median`` is the
    median nearest-neighbour distance it derives from) and ``fence`` the score above which
    a row is an outlier. ``reduced`` holds the rows' unit-length principal components,
    ``(n_rows, components)`` float32, which the map projects.
    """

    first: np.ndarray
    second: np.ndarray
    distance: np.ndarray
    outliers: np.ndarray
    score: np.ndarray
    sample: np.ndarray
    threshold: float
    median: float
    fence: float
    neighbours: int
    reduced: np.ndarray


def _unit(X: np.ndarray) -> np.ndarray:
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


def reduce_codes(blocks, n_rows: int, random_state: int = 0, components: int = COMPONENTS) -> np.ndarray:
    """Unit-length principal components of L2-normalised codes, read a block at a time.

    Parameters
    ----------
    blocks : callable
        ``blocks(rows)`` yields the codes of the given row positions (sorted) as
        ``(n, n_features)`` float32 arrays, in order; called twice (a sample to fit the
        components, then every row), so codes larger than memory are never held whole.
    n_rows : int
    random_state : int
        Seeds the fitting sample and the randomised solver.
    components : int

    Returns
    -------
    ndarray, (n_rows, min(components, n_features, sample size)) float32
    """
    rng = np.random.default_rng(random_state)
    sample = np.sort(rng.choice(n_rows, min(n_rows, FIT_ROWS), replace=False))
    fitted = _unit(np.concatenate(list(blocks(sample))))
    pca = PCA(n_components=min(components, *fitted.shape), svd_solver="randomized", random_state=random_state)
    pca.fit(fitted)
    reduced = np.concatenate([pca.transform(_unit(X)) for X in blocks(np.arange(n_rows))])
    return _unit(reduced).astype(np.float32)


def _pairs(found: np.ndarray, cosine: np.ndarray, queries: np.ndarray, threshold: float) -> dict:
    """``{(first, second): distance}`` of the neighbours closer than ``threshold``; ``found``
    and ``queries`` hold row positions, ``first < second``."""
    rows, columns = np.nonzero(cosine < threshold)
    other = found[rows, columns]
    return {(min(a, b), max(a, b)): d for a, b, d in zip(queries[rows].tolist(), other.tolist(),
                                                         cosine[rows, columns].tolist())}


def _neighbours(index: np.ndarray, queries: np.ndarray, reduced: np.ndarray, k: int):
    """Each query row's ``k`` nearest rows of ``index`` (never itself) and their cosine distances."""
    k = min(k, len(index) - np.isin(queries, index).any())
    search = NearestNeighbors(n_neighbors=k + 1, algorithm="brute").fit(reduced[index])
    euclidean, found = search.kneighbors(reduced[queries], n_neighbors=min(k + 1, len(index)))
    found = index[found]
    cosine = np.clip(euclidean, 0, None) ** 2 / 2  # unit rows: |a - b|^2 = 2 (1 - cos)
    others = found != queries[:, None]  # by index, not by column: exact copies may come before a row itself
    others[others.sum(axis=1) > k, -1] = False
    return found[others].reshape(len(queries), k), cosine[others].reshape(len(queries), k)


def review_codes(reduced: np.ndarray, splits: np.ndarray, neighbours: int = NEIGHBOURS,
                 factor: float = DUPLICATE_FACTOR, max_images: int = MAX_IMAGES, random_state: int = 0) -> DataReview:
    """Near-duplicate pairs, train/test leaks and outliers among images, from their reduced codes.

    Up to ``max_images`` images every image is compared with every other. Beyond that,
    within-split pairs and outliers are searched among a random sample of ``max_images``
    of them, while leaks stay exhaustive: every test image is compared with every
    training and validation image.

    Parameters
    ----------
    reduced : ndarray, (n_images, n_components) float32
        Unit-length rows (``reduce_codes``), one per image.
    splits : ndarray of str, (n_images,)
        train, val or test.
    neighbours : int
        Neighbours per image (fewer when there are fewer other images).
    factor : float
        Pairs closer than ``factor`` times the median nearest-neighbour distance are
        near-duplicates.
    max_images : int
    random_state : int
        Seeds the sample.
    """
    n = len(reduced)
    if min(n, max_images) < 2:
        raise SettingError(f"a data review compares images with each other: it needs 2 or more (max_images={max_images}, "
                           f"{n} images)")
    rng = np.random.default_rng(random_state)
    sample = np.arange(n) if n <= max_images else np.sort(rng.choice(n, max_images, replace=False))
    found, cosine = _neighbours(sample, sample, reduced, neighbours)
    median = float(np.median(cosine[:, 0]))
    threshold = factor * median
    pairs = _pairs(found, cosine, sample, threshold)
    test, fit = np.flatnonzero(splits == "test"), np.flatnonzero(splits != "test")
    if len(sample) < n and len(test) and len(fit):
        pairs.update(_pairs(*_neighbours(fit, test, reduced, neighbours), test, threshold))
    order = sorted(pairs, key=lambda pair: (pairs[pair], pair))
    score = np.full(n, np.nan)
    score[sample] = cosine[:, -1]
    low, high = np.percentile(cosine[:, -1], [25, 75])
    fence = float(high + OUTLIER_FENCE * (high - low))
    outliers = sample[cosine[:, -1] > fence]
    return DataReview(
        first=np.array([a for a, _ in order], dtype=np.int64).reshape(-1),
        second=np.array([b for _, b in order], dtype=np.int64).reshape(-1),
        distance=np.array([pairs[pair] for pair in order], dtype=float).reshape(-1),
        outliers=outliers[np.argsort(-score[outliers], kind="stable")],
        score=score, sample=sample, threshold=threshold, median=median, fence=fence, neighbours=found.shape[1],
        reduced=reduced,
    )


def class_counts(labels: np.ndarray, splits: np.ndarray, n_classes: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Images per class in each split, and the classes with few training images.

    Returns
    -------
    counts : dict
        Split name -> ``(n_classes,)`` int counts, in the order train, val, test (the
        splits present).
    rare : ndarray of bool, (n_classes,)
        Classes with fewer training images than ``RARE_CLASS`` times the mean per class.
    """
    counts = {split: np.bincount(labels[splits == split], minlength=n_classes)
              for split in ("train", "val", "test") if np.any(splits == split)}
    train = counts.get("train", np.zeros(n_classes, int))
    return counts, train < RARE_CLASS * train.mean()


def map_codes(reduced: np.ndarray, random_state: int = 0) -> np.ndarray:
    """A 2-D t-SNE of reduced codes, scaled into the unit square.

    Parameters
    ----------
    reduced : ndarray, (n_points, n_components) float32
    random_state : int

    Returns
    -------
    ndarray, (n_points, 2) float32 in [0, 1]
    """
    if len(reduced) < 3:
        return np.full((len(reduced), 2), 0.5, np.float32)
    perplexity = min(30.0, (len(reduced) - 1) / 3)
    points = TSNE(perplexity=perplexity, init="pca", max_iter=TSNE_ITERATIONS,
                  random_state=random_state).fit_transform(reduced)
    points -= points.min(axis=0)
    return (points / max(float(points.max()), 1e-12)).astype(np.float32)
