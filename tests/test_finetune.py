"""FinetuneHead: the estimator contract, training the top block on cached maps, BatchNorm, pickling."""

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.utils.estimator_checks import parametrize_with_checks
from torchvision.models.vgg import cfgs, make_layers

import classifiers.finetune
import classifiers.heads
from classifiers.finetune import FinetuneHead
from features import resolve_weights
from features.backbones import top_block
from features.weights import build_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@parametrize_with_checks(
    [FinetuneHead(max_iter=20, learning_rate=0.01, validation_fraction=0, random_state=0),
     FinetuneHead(hidden_units=(8,), dropout=0.1, max_iter=20, learning_rate=0.01, random_state=0)]
)
def test_sklearn_estimator_contract(estimator, check):
    check(estimator)


def _maps(channels, n_per_class=20, n_classes=3, seed=0):
    """Random (n, channels, 2, 2) maps, each class lifting its own channels: a learnable signal."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), n_per_class)
    X = rng.normal(0, 1, (len(y), channels, 2, 2)).astype(np.float32)
    for label in range(n_classes):
        X[y == label, label * 16:(label + 1) * 16] += 2
    return X, y


@pytest.fixture(scope="module")
def vgg_maps():
    """Like VGG16's pool4 for 32 x 32 images: 512 x 2 x 2."""
    return _maps(512)


def _fresh_block(backbone, tap):
    return top_block(build_model(resolve_weights(backbone, "random")), backbone, tap)


@pytest.fixture(scope="module")
def vgg_block():
    """The block after pool4 with the weights every head below starts from."""
    return _fresh_block("vgg16", "pool4")


def _head(**params):
    return FinetuneHead(**{"backbone": "vgg16", "tap": "pool4", "max_iter": 3, "learning_rate": 0.01,
                           "random_state": 0, **params})


@pytest.fixture(scope="module")
def fitted(vgg_maps):
    return _head().fit(*vgg_maps)


def _same_weights(first, second):
    pairs = zip(first.state_dict().values(), second.state_dict().values(), strict=True)
    return all(torch.equal(a, b) for a, b in pairs)


def test_fit_predicts_probabilities_and_trains_the_block(vgg_maps, fitted, vgg_block):
    X, y = vgg_maps
    assert fitted.predict(X).shape == (60,) and set(fitted.predict(X)) <= {0, 1, 2}
    proba = fitted.predict_proba(X)
    assert proba.shape == (60, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1)
    assert fitted.n_features_in_ == 512 and fitted.input_shape_ == (512, 2, 2) and fitted.n_iter_ == 3
    assert not fitted.block_.training and next(fitted.block_.parameters()).device.type == "cpu"
    assert {name for name, _ in fitted.block_.named_parameters()} == {
        f"features.{layer}.{kind}" for layer in (24, 26, 28) for kind in ("weight", "bias")}
    assert not _same_weights(fitted.block_, vgg_block)


def test_warmup_trains_the_head_alone(vgg_maps, vgg_block):
    warm = _head(max_iter=2, warmup_epochs=2).fit(*vgg_maps)
    assert _same_weights(warm.block_, vgg_block)


def test_same_random_state_same_model_other_state_other_model(vgg_maps, fitted):
    X, y = vgg_maps
    np.testing.assert_array_equal(clone(fitted).fit(X, y).predict_proba(X), fitted.predict_proba(X))
    other = clone(fitted).set_params(random_state=1).fit(X, y)
    assert not np.allclose(other.predict_proba(X), fitted.predict_proba(X))


def test_clone_params_and_grid_search(vgg_maps, fitted):
    X, y = vgg_maps
    copy = clone(fitted)
    assert copy.get_params() == fitted.get_params() and not hasattr(copy, "block_")
    assert copy.set_params(block_learning_rate=1e-3, hidden_units=(4,)) is copy
    assert copy.get_params()["block_learning_rate"] == 1e-3
    search = GridSearchCV(_head(max_iter=2), {"learning_rate": [1e-3, 1e-2]}, cv=StratifiedKFold(2)).fit(X, y)
    assert search.best_estimator_.predict_proba(X).shape == (60, 3)


def test_joblib_round_trip_needs_no_backbone_weights(vgg_maps, fitted, tmp_path, monkeypatch):
    X, _ = vgg_maps
    joblib.dump(fitted, tmp_path / "head.joblib")

    def no_weights(*args, **kwargs):
        raise AssertionError("loading a fitted head must not build the backbone")

    monkeypatch.setattr(classifiers.finetune, "_pretrained_block", no_weights)
    restored = joblib.load(tmp_path / "head.joblib")
    np.testing.assert_array_equal(restored.predict_proba(X), fitted.predict_proba(X))


def test_float16_maps_are_accepted(vgg_maps):
    X, y = vgg_maps
    half = X.astype(np.float16)
    head = _head(max_iter=1).fit(half, y)
    np.testing.assert_array_equal(head.predict_proba(half), head.predict_proba(half.astype(np.float32)))


def test_input_of_the_wrong_shape_is_refused_with_the_shapes(vgg_maps, fitted):
    X, y = vgg_maps
    with pytest.raises(ValueError, match=r"X has rows of shape \(512, 3, 3\); this FinetuneHead was fitted on "
                                         r"rows of shape \(512, 2, 2\)"):
        fitted.predict(np.zeros((2, 512, 3, 3), np.float32))
    expected = r"tap 'pool4' shaped \(n_samples, 512, height, width\) .*; got X of shape "
    with pytest.raises(ValueError, match=expected + r"\(60, 512\)"):
        _head().fit(X.mean(axis=(2, 3)), y)
    with pytest.raises(ValueError, match=expected + r"\(60, 256, 2, 2\)"):
        _head().fit(X[:, :256], y)


@pytest.mark.parametrize(
    "params, message",
    [({"tap": None}, "backbone = 'vgg16' and tap = None: give both"),
     ({"tap": "conv5"}, "unknown tap 'conv5' for backbone 'vgg16'"),
     ({"warmup_epochs": -1}, "warmup_epochs = -1 must be at least 0"),
     ({"dropout": 1.0}, "dropout = 1.0 must be in")],
)
def test_bad_parameters_fail_in_fit_with_their_name(vgg_maps, params, message):
    with pytest.raises(ValueError, match=message):
        _head(**params).fit(*vgg_maps)


def test_a_weights_file_of_the_conv_layers_alone_is_enough(vgg_maps, tmp_path):
    conv = make_layers(cfgs["D"])  # VGG16's conv layers, like the "notop" ImageNet files
    torch.save({f"features.{key}": value for key, value in conv.state_dict().items()}, tmp_path / "conv.pth")
    head = _head(weights=str(tmp_path / "conv.pth"), max_iter=1).fit(*vgg_maps)  # warm-up only
    assert torch.equal(head.block_.get_submodule("features.24").weight, conv[24].weight)


@pytest.mark.parametrize("train_batchnorm", [False, True])
def test_batchnorm_statistics_stay_frozen_unless_asked(train_batchnorm):
    X, y = _maps(1024, n_per_class=10)  # ResNet50's layer3 for 32 x 32 images
    head = FinetuneHead(backbone="resnet50", tap="layer3", max_iter=2, warmup_epochs=0, validation_fraction=0,
                        train_batchnorm=train_batchnorm, random_state=0).fit(X, y)
    fresh = _fresh_block("resnet50", "layer3").get_submodule("layer4.0.bn1")
    trained = head.block_.get_submodule("layer4.0.bn1")
    assert torch.equal(trained.running_mean, fresh.running_mean) != train_batchnorm
    assert not torch.equal(trained.weight, fresh.weight)  # the affine parameters train either way


def test_groups_never_straddle_the_validation_split():
    X, y = _maps(4, n_per_class=24)
    groups = np.arange(len(y)) // 3  # three views of each image
    head = FinetuneHead(validation_fraction=0.25, max_iter=2, random_state=0)
    train, validation = head._validation_split(y, seed=0, groups=groups)
    assert len(validation) and set(groups[train]).isdisjoint(groups[validation])
    assert sorted([*train, *validation]) == list(range(len(y)))
    assert head.fit(X, y, groups=groups).validation_loss_curve_  # a validation fold was carved
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        head.fit(X, y, groups=groups[1:])


def test_bfloat16_training_trains_the_block_in_float32_weights(vgg_maps, fitted, vgg_block, monkeypatch):
    monkeypatch.setattr(classifiers.heads, "has_native_bfloat16", lambda: True)
    X, y = vgg_maps
    half = _head(precision="bfloat16", device="cpu").fit(X, y)
    assert not _same_weights(half.block_, vgg_block) and not _same_weights(half.block_, fitted.block_)
    assert next(half.block_.parameters()).dtype == torch.float32
    np.testing.assert_allclose(half.predict_proba(X).sum(axis=1), 1)
