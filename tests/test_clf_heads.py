"""The torch heads: the scikit-learn estimator contract, seeding, early stopping, pickling."""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.utils.estimator_checks import parametrize_with_checks

from classifiers.heads import TorchHead


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@parametrize_with_checks(
    [TorchHead(max_iter=20, learning_rate=0.01, validation_fraction=0, random_state=0),
     TorchHead(hidden_units=(8,), dropout=0.1, max_iter=20, learning_rate=0.01, random_state=0)]
)
def test_sklearn_estimator_contract(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def blobs():
    X, y = make_classification(n_samples=300, n_features=12, n_informative=6, n_classes=3, random_state=1)
    return X.astype(np.float32), y


def test_same_random_state_same_model_other_state_other_model(blobs):
    X, y = blobs
    head = TorchHead(hidden_units=(16,), dropout=0.2, max_iter=15, random_state=3)
    first, again = clone(head).fit(X, y), clone(head).fit(X, y)
    np.testing.assert_array_equal(first.predict_proba(X), again.predict_proba(X))
    other = clone(head).set_params(random_state=4).fit(X, y)
    assert not np.allclose(first.predict_proba(X), other.predict_proba(X))


def test_early_stopping_keeps_the_best_epoch(blobs):
    X, y = blobs
    head = TorchHead(hidden_units=(64,), learning_rate=0.05, max_iter=300, n_iter_no_change=5, random_state=0).fit(X, y)
    assert head.n_iter_ < 300, "validation loss stopped improving long before 300 epochs"
    assert head.n_iter_ - head.best_epoch_ == 5
    assert min(head.validation_loss_curve_) == head.validation_loss_curve_[head.best_epoch_ - 1]
    without = TorchHead(max_iter=7, validation_fraction=0, random_state=0).fit(X, y)
    assert without.n_iter_ == without.best_epoch_ == 7 and without.validation_loss_curve_ == []


def test_class_weight_shifts_predictions_to_the_heavy_class(blobs):
    X, y = blobs
    plain = TorchHead(max_iter=30, learning_rate=0.01, random_state=0).fit(X, y)
    heavy = TorchHead(max_iter=30, learning_rate=0.01, class_weight={0: 20.0, 1: 1.0, 2: 1.0}, random_state=0).fit(X, y)
    assert (heavy.predict(X) == 0).sum() > (plain.predict(X) == 0).sum()
    balanced = TorchHead(max_iter=5, class_weight="balanced", random_state=0).fit(X[40:], y[40:])
    assert balanced.predict_proba(X).shape == (len(X), 3)


def test_grid_search_pickle_and_string_labels(blobs):
    X, y = blobs
    names = np.array(["cat", "dog", "eel"])[y]
    search = GridSearchCV(
        TorchHead(max_iter=10, learning_rate=0.01, random_state=0),
        {"weight_decay": [1e-3, 1e-1], "hidden_units": [(), (8,)]},
        cv=StratifiedKFold(3),
    ).fit(X, names)
    best = search.best_estimator_
    assert set(best.predict(X)) <= {"cat", "dog", "eel"} and search.best_score_ > 0.6
    restored = pickle.loads(pickle.dumps(best))
    np.testing.assert_array_equal(restored.predict_proba(X), best.predict_proba(X))
    assert str(next(restored.network_.parameters()).device) == "cpu"


@pytest.mark.parametrize(
    "params, message",
    [({"dropout": 1.0}, "dropout = 1.0 must be in"), ({"max_iter": 0}, "max_iter = 0 must be at least 1"),
     ({"hidden_units": (0,)}, "hidden_units = \\(0,\\) must be positive")],
)
def test_bad_parameters_fail_in_fit_with_their_name(blobs, params, message):
    X, y = blobs
    head = TorchHead(**params)  # __init__ only stores
    with pytest.raises(ValueError, match=message):
        head.fit(X, y)


def test_groups_never_straddle_the_validation_split(blobs):
    X, y = blobs
    groups = np.arange(len(y)) // 4  # four views of each image
    head = TorchHead(validation_fraction=0.2, max_iter=3, random_state=0)
    train, validation = head._validation_split(y, seed=0, groups=groups)
    assert len(validation) and set(groups[train]).isdisjoint(groups[validation])
    assert sorted([*train, *validation]) == list(range(len(y)))
    assert head.fit(X, y, groups=groups).validation_loss_curve_
    few = np.arange(len(y)) % 3  # fewer groups than the 5 folds: no validation fold, as for tiny classes
    assert head._validation_split(y, seed=0, groups=few)[1] is None
