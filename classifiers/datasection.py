"""The data review of one cell of a feature store: ``review_cell`` (the report's best cell,
or any cell from Python), the rows of ``duplicates.csv`` and ``outliers.csv``, and the
"Data review" section of report.html with its map.

The search itself is ``classifiers.datareview``; this module reads the codes through
``features.FeatureStore`` (one row per image: augmented views are left out; maps are
reduced to their channel means), names the rows and puts pictures on them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from features import FeatureStore

from .codesmap import MISTAKE, SUSPECT, CodesMap, sprite_uri
from .datareview import COMPONENTS, MAP_POINTS, DataReview, class_counts, map_codes, reduce_codes, review_codes
from .html import Card, DataReviewSection, Gallery, Pair

__all__ = ["DUPLICATE_COLUMNS", "OUTLIER_COLUMNS", "MAX_PAIRS", "MAX_OUTLIERS", "CellReview", "review_cell",
           "review_section"]

log = logging.getLogger(__name__)

DUPLICATE_COLUMNS = ("rank", "kind", "first_id", "first_split", "first_label", "second_id", "second_split",
                     "second_label", "distance")
"""Columns of ``duplicates.csv``, one row per pair, closest first; ``first`` is the image of
the earlier split (train, val, test), ``distance`` the cosine distance of their reduced codes."""
OUTLIER_COLUMNS = ("rank", "id", "split", "label", "score")
"""Columns of ``outliers.csv``, most isolated first; ``score`` is the cosine distance to the
image's k-th nearest neighbour."""
MAX_PAIRS = 30
"""Pairs shown as thumbnails (leaks first); ``duplicates.csv`` lists them all."""
MAX_OUTLIERS = 20
"""Outliers shown as thumbnails; ``outliers.csv`` lists them all."""
BLOCK_BYTES = 256 << 20
"""Codes read at a time (as float32)."""
SPLITS = ("train", "val", "test")
KINDS = ("train/test", "val/test", "train/train", "train/val", "val/val", "test/test")
"""Kinds of pair in the order the page shows them: leaks first."""
HEADINGS = {"train/test": "Leaks: a test image and a near copy in train", "val/test": "Leaks: a test image and a "
            "near copy in val", "train/train": "Near-duplicates within train", "train/val": "Near-duplicates across "
            "train and val", "val/val": "Near-duplicates within val", "test/test": "Near-duplicates within test"}


@dataclass
class CellReview:
    """``DataReview`` of one cell, with the images it is about: ``positions`` (rows of the
    store's ``ids``), ``ids``, ``splits`` and ``labels`` per reviewed image, in the order of
    ``found``'s rows; ``cell`` names the codes (``backbone tap/pooling`` or ``tap/pooling``)."""

    positions: np.ndarray
    ids: list[str]
    splits: np.ndarray
    labels: np.ndarray
    classes: list[str]
    found: DataReview
    cell: str

    def _ordered(self, a: int, b: int) -> tuple[int, int]:
        return (a, b) if SPLITS.index(self.splits[a]) <= SPLITS.index(self.splits[b]) else (b, a)

    def kind(self, a: int, b: int) -> str:
        first, second = self._ordered(a, b)
        return f"{self.splits[first]}/{self.splits[second]}"

    def duplicates(self) -> list[dict]:
        """The rows of ``duplicates.csv``."""
        rows = []
        for rank, (a, b, distance) in enumerate(zip(self.found.first, self.found.second, self.found.distance), 1):
            first, second = self._ordered(a, b)
            rows.append({"rank": rank, "kind": self.kind(a, b),
                         **{f"{side}_{key}": value for side, row in (("first", first), ("second", second))
                            for key, value in (("id", self.ids[row]), ("split", self.splits[row]),
                                               ("label", self.classes[self.labels[row]]))},
                         "distance": round(float(distance), 6)})
        return rows

    def outliers(self) -> list[dict]:
        """The rows of ``outliers.csv``."""
        return [{"rank": rank, "id": self.ids[row], "split": self.splits[row], "label": self.classes[self.labels[row]],
                 "score": round(float(self.found.score[row]), 6)} for rank, row in enumerate(self.found.outliers, 1)]

    def leaked(self) -> np.ndarray:
        """Reviewed rows of the test images with a near copy in train or val."""
        kinds = [self.kind(a, b) for a, b in zip(self.found.first, self.found.second)]
        return np.unique([max(a, b, key=lambda row: SPLITS.index(self.splits[row]))
                          for a, b, kind in zip(self.found.first, self.found.second, kinds)
                          if kind in ("train/test", "val/test")]).astype(np.int64)


def _vectors(X: np.ndarray) -> np.ndarray:
    """Rows of codes as vectors: a map's channel means (its average pooling)."""
    return X.reshape(len(X), X.shape[1], -1).mean(axis=2, dtype=np.float32) if X.ndim > 2 else X


def review_cell(codes: FeatureStore, tap: str, pooling: str, random_state: int = 0, backbone: str = "") -> CellReview:
    """Near-duplicates, leaks and outliers among the images of ``codes``, by their ``tap``/``pooling`` codes.

    Parameters
    ----------
    codes : FeatureStore
        An open store with complete codes of ``tap``/``pooling``.
    tap, pooling : str
    random_state : int
        Seeds the samples (principal components, and the search beyond ``MAX_IMAGES``).
    backbone : str
        Only names the cell in what the review says.
    """
    images = np.flatnonzero(np.asarray(codes.ids, dtype=object) == codes.groups)  # no augmented views
    rows = max(1, BLOCK_BYTES // (4 * int(np.prod(codes.row_shape(tap, pooling)))))

    def blocks(chosen: np.ndarray):
        return (_vectors(X) for X, _ in codes.blocks(tap, pooling, images[chosen], rows))

    reduced = reduce_codes(blocks, len(images), random_state)
    splits = codes.splits[images]
    found = review_codes(reduced, splits, random_state=random_state)
    return CellReview(images, [codes.ids[row] for row in images], splits, codes.labels[images], list(codes.classes),
                      found, " ".join(part for part in (backbone, f"{tap}/{pooling}") if part))


def _percent(value: float) -> str:
    return f"{100 * value:.1f} %"


def _note(review: CellReview, test_right: dict[str, bool]) -> str:
    """What was reviewed, how, and the leak sentence; ``test_right``: test image id -> whether
    the best model gets it right."""
    found, n = review.found, len(review.ids)
    sampled = (f" Pairs within splits and outliers were searched among a random sample of {len(found.sample):,} of "
               f"the {n:,} images; leaks among all of them." if len(found.sample) < n else "")
    test = np.flatnonzero(review.splits == "test")
    leaked = np.isin(test, review.leaked())
    right = np.array([test_right[review.ids[row]] for row in test], dtype=bool)
    if not len(test):
        leaks = "There is no test split, so no leak."
    elif leaked.any():
        clean = right[~leaked].mean() if (~leaked).any() else float("nan")
        leaks = (f"{leaked.sum():,} of {len(test):,} test images have a near copy among the training images (train "
                 f"or val): without them the best model is right {_percent(clean)} of the time, against "
                 f"{_percent(right.mean())} on all test images.")
    else:
        leaks = "No test image has a near copy among the training images."
    return (f"{leaks} The codes of {n:,} images ({review.cell}, the best model's; one row per image, no augmented "
            f"views) are compared by cosine distance on their {found.reduced.shape[1]} principal components. A "
            f"near-duplicate pair is closer than {found.threshold:.4g} (0.13 times the median distance of an image "
            f"to its nearest neighbour, {found.median:.4g}); an outlier's distance to its k-th (k = {found.neighbours}) "
            f"nearest neighbour is over {found.fence:.4g} (third quartile + 1.5 interquartile ranges).{sampled} "
            f"{len(found.first):,} pairs and {len(found.outliers):,} outliers: duplicates.csv and outliers.csv list "
            f"them all.")


def _map_rows(review: CellReview, marked: list[int], random_state: int) -> np.ndarray:
    """The reviewed rows the map shows: all of them up to ``MAP_POINTS``; beyond, the marked
    ones first (up to half) and a random sample of the rest."""
    n = len(review.ids)
    if n <= MAP_POINTS:
        return np.arange(n)
    chosen = list(dict.fromkeys(marked))[:MAP_POINTS // 2]
    rest = np.setdiff1d(np.arange(n), chosen)
    fill = np.random.default_rng(random_state).choice(rest, MAP_POINTS - len(chosen), replace=False)
    return np.sort(np.concatenate([np.asarray(chosen, dtype=np.int64), fill]))


def review_section(review: CellReview, pictures, load, predict, mistakes: set[str], suspects: set[str],
                   test_right: dict[str, bool], random_state: int = 0) -> DataReviewSection:
    """The "Data review" section of report.html.

    Parameters
    ----------
    review : CellReview
    pictures : callable
        ``pictures(ids, what)``: thumbnail data URIs (None for an image that cannot be shown).
    load : callable
        ``load(ids)``: the images as PIL images, one at a time (None where they cannot be read).
    predict : callable
        ``predict(positions)``: the best model's predicted labels of store rows.
    mistakes, suspects : set of str
        Ids of the test images the best model gets wrong and of the suspect labels.
    test_right : dict
        Test image id -> whether the best model gets it right.
    """
    found, classes = review.found, review.classes
    order = sorted(range(len(found.first)), key=lambda index: KINDS.index(review.kind(found.first[index],
                                                                                      found.second[index])))[:MAX_PAIRS]
    shown = [review._ordered(found.first[index], found.second[index]) for index in order]
    uris = iter(pictures([review.ids[row] for pair in shown for row in pair], "near-duplicates"))

    def card(row: int, uri: str | None) -> Card:
        return Card(review.ids[row], uri, [f"{review.splits[row]}, {classes[review.labels[row]]}"])

    groups: dict[str, list[Pair]] = {}
    for index, (first, second) in zip(order, shown):
        kind = review.kind(first, second)
        groups.setdefault(kind, []).append(Pair(card(first, next(uris)), card(second, next(uris)),
                                                f"distance {found.distance[index]:.3g}"))
    total = {kind: sum(review.kind(a, b) == kind for a, b in zip(found.first, found.second)) for kind in groups}
    pairs = [(f"{HEADINGS[kind]}: {total[kind]:,} pairs" + (f" ({len(mine)} shown)" if len(mine) < total[kind] else ""),
              mine) for kind, mine in groups.items()]
    outliers = found.outliers[:MAX_OUTLIERS]
    cards = [Card(review.ids[row], uri, [f"{review.splits[row]}, {classes[review.labels[row]]}",
                                         f"score {found.score[row]:.3g}"])
             for row, uri in zip(outliers, pictures([review.ids[row] for row in outliers], "outliers"))]
    gallery = Gallery("Outliers", f"{len(found.outliers):,} images are far from all others, the most isolated first"
                      + (f" (the first {MAX_OUTLIERS} shown)" if len(found.outliers) > MAX_OUTLIERS else "")
                      + ": a wrong file, a blank frame, or an image unlike the rest of its collection.",
                      [("", cards)] if cards else [])
    counts, rare = class_counts(review.labels, review.splits, len(classes))
    flags = np.array([MISTAKE * (sample_id in mistakes) + SUSPECT * (sample_id in suspects)
                      for sample_id in review.ids], dtype=np.int64)
    marked = [*np.flatnonzero(flags).tolist(), *found.first.tolist(), *found.second.tolist(), *found.outliers.tolist()]
    shown_rows = _map_rows(review, marked, random_state)
    n = len(review.ids)
    log.info("report: %d pairs and %d outliers found; mapping %d images (t-SNE)", len(found.first),
             len(found.outliers), len(shown_rows))
    ids = [review.ids[row] for row in shown_rows]
    codes_map = CodesMap(
        xy=map_codes(found.reduced[shown_rows], random_state), ids=ids, splits=review.splits[shown_rows].tolist(),
        labels=review.labels[shown_rows], predicted=np.asarray(predict(review.positions[shown_rows])),
        flags=flags[shown_rows], classes=classes,
        sprite=sprite_uri(load(ids), len(ids)),
        note=(f"A t-SNE of the {COMPONENTS} principal components of the codes, "
              + (f"all {n:,} images" if len(shown_rows) == n else
                 f"a sample of {len(shown_rows):,} of the {n:,} images (test mistakes, suspect labels, near-duplicates "
                 f"and outliers first, up to half of them; the rest at random)")
              + ": near points have alike codes, so a class's points in another's cloud are images the classifier "
                "may confuse, and a lone point is an odd image. Distances between far clouds mean little. Hover over "
                "(or tap) a point to see it; the wheel or the buttons zoom, dragging pans."))
    note = _note(review, test_right)
    return DataReviewSection(note, pairs, gallery, classes, {split: values.tolist() for split, values in counts.items()},
                             rare.tolist(), codes_map)
