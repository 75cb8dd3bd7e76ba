"""The zoo: every entry fits behind every preprocessing step; grids; learning in row blocks."""

import numpy as np
import pytest
from sklearn.datasets import make_classification

from classifiers import MAPS, ZOO, check_grid, fit_in_blocks, make_model, param_grid
from classifiers.preprocessing import signed_sqrt

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # the two heads


@pytest.fixture(scope="module")
def codes():
    """Non-negative, heavy-tailed, differently scaled features, like ReLU CNN codes."""
    X, y = make_classification(n_samples=240, n_features=20, n_informative=6, n_classes=3, class_sep=2.0, random_state=0)
    return ((X - X.min(axis=0)) ** 1.5 * np.linspace(0.1, 100, 20)).astype(np.float32), y


@pytest.mark.parametrize("name", [name for name in ZOO if ZOO[name].takes != MAPS])
def test_every_entry_learns_behind_its_preprocessing(name, codes):
    X, y = codes
    model = make_model(name, ["ssqrt", "standard"], random_state=0).fit(X[:180], y[:180])
    assert [step for step, _ in model.steps] == ["ssqrt", "standard", "classifier"]
    assert model.score(X[180:], y[180:]) > 0.6  # chance is 1/3
    assert param_grid(name), "each entry has a default grid to search"


def test_a_map_head_has_no_preprocessing_its_first_layers_are_the_backbones():
    (name,) = [name for name in ZOO if ZOO[name].takes == MAPS]
    model = make_model(name, ["ssqrt", "standard"], random_state=3)
    assert [step for step, _ in model.steps] == ["classifier"]
    assert model[-1].get_params()["random_state"] == 3 and param_grid(name) == {}


@pytest.mark.parametrize("chain", [[], ["standard"], ["l2"], ["ssqrt", "l2"], ["standard", "pca5"]])
def test_preprocessing_chains(chain, codes):
    X, y = codes
    model = make_model("logreg", chain).fit(X, y)
    assert [step for step, _ in model.steps[:-1]] == chain
    transformed = model[:-1].transform(X) if chain else X
    if chain[-1:] == ["l2"]:
        np.testing.assert_allclose(np.linalg.norm(transformed, axis=1), 1, rtol=1e-5)
    if chain[-1:] == ["pca5"]:
        assert transformed.shape == (len(X), 5)


def test_signed_square_root_keeps_the_sign():
    np.testing.assert_array_equal(signed_sqrt(np.array([-4.0, 0.0, 9.0])), [-2.0, 0.0, 3.0])


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: make_model("logreg", ["pca0"]), "unknown preprocessing step 'pca0'"),
        (lambda: make_model("logreg", ["standrd"]), "valid steps: standard, l2, ssqrt, pca<n>"),
        (lambda: make_model("logreg", ["l2", "l2"]), "names a step twice"),
        (lambda: make_model("svm"), "unknown classifier 'svm'"),
        (lambda: make_model("linsv"), "did you mean 'linsvm'?"),
        (lambda: check_grid("logreg", {"c": [1.0]}), "logreg has no parameter 'c' (did you mean 'C'?)"),
        (lambda: check_grid("logreg", {"C": [1.0, -1]}), "The 'C' parameter of LogisticRegression must be a float in "
                                                        "the range (0.0, inf]. Got -1 instead."),
        (lambda: check_grid("mlp-head", {"learning_rate": 0}), "learning_rate = 0 must be more than 0"),
        (lambda: check_grid("svm-rbf", {"kernel": ["poly"]}),  # fine for SVC, not for its form at scale
         "svm-rbf has no parameter 'kernel' (past 20,000 training rows svm-rbf runs as NystroemClassifier)"),
        (lambda: check_grid("svm-rbf", {"gamma": ["scale", "auto", 0.1, "none"]}), "The 'gamma' parameter of SVC"),
        (lambda: check_grid("mlp-head", {"hidden_units": [512]}), "hidden_units = 512: 'int' object is not iterable"),
    ],
)
def test_bad_names_and_values_are_refused_with_the_valid_ones(call, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
        call()


def test_grid_overrides_replace_defaults_and_scalars_become_lists():
    grid = param_grid("svm-rbf", {"C": 3.0, "gamma": ["scale", 0.1]})
    assert grid == {"classifier__C": [3.0], "classifier__gamma": ["scale", 0.1]}
    assert param_grid("logreg") == {"classifier__C": ZOO["logreg"].grid["C"]}


def test_sgd_learns_in_row_chunks_as_well_as_in_memory(codes):
    X, y = codes
    X_train, y_train, X_test, y_test = X[:180], y[:180], X[180:], y[180:]
    passes = []

    def chunks():
        passes.append(1)
        return ((X_train[start:start + 50], y_train[start:start + 50]) for start in range(0, len(X_train), 50))

    model = make_model("sgd", ["standard", "pca10"], random_state=0, incremental=True)
    fit_in_blocks(model, chunks, classes=np.unique(y), epochs=20)
    assert len(passes) == 2 + 20  # one pass per stateful step, then the epochs
    np.testing.assert_allclose(model.named_steps["standard"].mean_, X_train.mean(axis=0), rtol=1e-4)
    assert model.named_steps["standard"].n_samples_seen_ == len(X_train)
    in_memory = make_model("sgd", ["standard", "pca10"], random_state=0).fit(X_train, y_train)
    assert model.score(X_test, y_test) > in_memory.score(X_test, y_test) - 0.1
    assert model.score(X_test, y_test) > 0.6


def test_only_partial_fit_estimators_learn_in_chunks(codes):
    X, y = codes
    with pytest.raises(ValueError, match="LogisticRegression cannot learn in row blocks"):
        fit_in_blocks(make_model("logreg"), lambda: [(X, y)], classes=np.unique(y))
