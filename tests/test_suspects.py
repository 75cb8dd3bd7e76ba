"""Suspect labels: out-of-fold predictions judged by confident learning (``find_suspects``)."""

import numpy as np
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from classifiers.suspects import find_suspects


class _Recording(LogisticRegression):
    """A logistic regression that holds out rows of its own, as the torch heads do: it
    records the groups each fit is given."""

    seen = []

    def fit(self, X, y, groups=None):
        type(self).seen.append(groups)
        return super().fit(X, y)


def test_moved_labels_rank_first_and_a_head_gets_the_groups_of_its_views():
    images, y = make_classification(n_samples=150, n_features=8, n_informative=6, n_classes=3, n_clusters_per_class=1,
                                    class_sep=3.0, random_state=0)
    rng = np.random.default_rng(0)
    X = np.repeat(images, 2, axis=0) + rng.normal(0, 0.1, (300, 8)) * (np.arange(300) % 2 == 1)[:, None]
    groups = np.repeat(np.arange(150), 2)  # every image twice: the plain picture, then a view of it
    views = np.arange(300) % 2 == 1
    labels = y.copy()
    moved = np.arange(0, 150, 15)  # ten images' labels moved to the next class, their views' with them
    labels[moved] = (y[moved] + 1) % 3
    labels = np.repeat(labels, 2)
    _Recording.seen.clear()
    model = Pipeline([("classifier", _Recording(max_iter=1000))])
    found = find_suspects(model, X, labels, groups, views)
    assert found.judged == 150 and not views[found.rows].any()  # views train, are never judged
    assert set(2 * moved) <= set(found.rows[:20])
    assert len(_Recording.seen) == found.folds
    assert all(seen is not None and len(np.unique(seen)) * 2 == len(seen) for seen in _Recording.seen)
