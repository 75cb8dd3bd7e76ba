"""The torch heads: the scikit-learn estimator contract, seeding, early stopping, pickling."""

import pickle

import numpy as np
import pytest
import torch
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
     ({"hidden_units": (0,)}, "hidden_units = \\(0,\\) must be positive"),
     ({"input_dropout": -0.1}, "input_dropout = -0.1 must be in"),
     ({"learning_rate_schedule": "step"}, "learning_rate_schedule = 'step'; valid: constant, cosine"),
     ({"label_smoothing": 1.0}, "label_smoothing = 1.0 must be in"),
     ({"precision": "float16"}, "precision = 'float16'; valid: float32, bfloat16")],
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
    one_each = head._validation_split(y, seed=0, groups=np.arange(len(y)))  # one row per image: as without groups
    assert all(np.array_equal(a, b) for a, b in zip(one_each, head._validation_split(y, seed=0)))
    few = np.arange(len(y)) % 3  # fewer groups than the 5 folds: no validation fold, as for tiny classes
    assert head._validation_split(y, seed=0, groups=few)[1] is None


def test_the_cosine_schedule_anneals_to_zero_over_max_iter(blobs):
    """Past ``max_iter`` calls the cosine schedule's learning rate is zero: training stops
    moving the weights, where the constant one goes on."""
    X, y = blobs

    def weights_after(head, calls):
        for _ in range(calls):
            head.partial_fit(X, y, classes=[0, 1, 2])
        return [parameter.detach().clone() for parameter in head.network_.parameters()]

    for schedule, moves in (("cosine", False), ("constant", True)):
        head = TorchHead(hidden_units=(8,), learning_rate=0.05, learning_rate_schedule=schedule, max_iter=2,
                         random_state=0)
        before, after = weights_after(head, 2), weights_after(head, 1)
        assert any(not np.allclose(old, new) for old, new in zip(before, after)) == moves, schedule
    annealed = TorchHead(learning_rate=0.05, learning_rate_schedule="cosine", max_iter=8, validation_fraction=0,
                         random_state=0).fit(X, y)
    constant = clone(annealed).set_params(learning_rate_schedule="constant").fit(X, y)
    assert annealed.loss_curve_ != constant.loss_curve_ and annealed.score(X, y) > 0.7


def test_input_dropout_defaults_to_dropout(blobs):
    X, y = blobs
    head = TorchHead(hidden_units=(8,), dropout=0.3, max_iter=5, random_state=0)
    same = clone(head).set_params(input_dropout=0.3).fit(X, y)
    np.testing.assert_array_equal(clone(head).fit(X, y).predict_proba(X), same.predict_proba(X))
    other = clone(head).set_params(input_dropout=0.0).fit(X, y)
    assert not np.allclose(same.predict_proba(X), other.predict_proba(X))


def test_label_smoothing_makes_the_head_less_certain(blobs):
    X, y = blobs
    head = TorchHead(learning_rate=0.05, max_iter=30, validation_fraction=0, random_state=0)
    sure = clone(head).fit(X, y).predict_proba(X).max(axis=1).mean()
    smoothed = clone(head).set_params(label_smoothing=0.3).fit(X, y).predict_proba(X).max(axis=1).mean()
    assert smoothed < sure - 0.05


def test_bfloat16_training_learns_as_float32_does_and_predicts_in_float32(blobs, monkeypatch):
    import classifiers.heads as heads

    X, y = blobs
    monkeypatch.setattr(heads, "has_native_bfloat16", lambda: True)
    head = TorchHead(hidden_units=(32,), dropout=0.1, learning_rate=0.01, max_iter=30, device="cpu", random_state=0)
    single = clone(head).fit(X, y)
    half = clone(head).set_params(precision="bfloat16").fit(X, y)
    assert half.score(X, y) > 0.75 and abs(half.score(X, y) - single.score(X, y)) < 0.05
    assert not np.array_equal(half.predict_proba(X), single.predict_proba(X)), "the passes ran in bfloat16"
    assert half.predict_proba(X).dtype == np.float64 and next(half.network_.parameters()).dtype == torch.float32
    np.testing.assert_array_equal(clone(half).fit(X, y).predict_proba(X), half.predict_proba(X))  # reproducible


def test_bfloat16_training_warns_on_a_cpu_without_it(blobs, monkeypatch):
    import classifiers.heads as heads

    X, y = blobs
    monkeypatch.setattr(heads, "has_native_bfloat16", lambda: False)
    with pytest.warns(UserWarning, match="without avx512_bf16 or AMX"):
        TorchHead(max_iter=2, precision="bfloat16", device="cpu", random_state=0).fit(X, y)


def test_bfloat16_training_is_refused_on_a_gpu_without_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *args, **kwargs: "Tesla V100")
    with pytest.raises(ValueError, match="Tesla V100 has no bfloat16; train in \"float32\""):
        TorchHead(precision="bfloat16")._check_precision(torch.device("cuda"))
