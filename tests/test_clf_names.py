"""Issue 27's guarantees in classifiers: the store says which weights made it (and a store
written before it did still works), and a refused setting or model file is a user error."""

import h5py
import numpy as np
import pytest

import classifiers
import features
from classifiers.frozen import map_head_settings, weights_of_store
from features import CnnCodesError, FileInputError, SettingError, UserError


def test_the_store_records_the_weights_and_seed_that_remake_them(image_folder, tmp_path):
    store = features.extract(image_folder, cache_dir=tmp_path, backbone="vgg16", taps=["pool4"], pooling=["none"],
                             weights="random", seed=3, image_size=32, num_workers=0, progress=False)
    attrs = dict(store.attrs)
    assert (attrs["weights_setting"], attrs["weights_seed"]) == ("random", 3)
    assert map_head_settings(store, "pool4") == {"backbone": "vgg16", "tap": "pool4", "weights": "random",
                                                 "weights_seed": 3}
    remade = features.resolve_weights("vgg16", *weights_of_store(attrs))
    assert remade.identity == attrs["weights"] == "random(seed=3)"
    path = store.path
    store.close()
    with h5py.File(path, "a") as file:  # as a store written before the attributes existed
        del file.attrs["weights_setting"], file.attrs["weights_seed"]
    with features.FeatureStore(path) as old:
        assert weights_of_store(dict(old.attrs)) == ("random", 3)  # read from the identity, as before


@pytest.mark.parametrize("attrs, expected", [
    ({"weights": "VGG16_Weights.IMAGENET1K_V1", "weights_file": ""}, ("IMAGENET1K_V1", 0)),
    ({"weights": "file w.pth", "weights_file": "/data/w.pth"}, ("/data/w.pth", 0)),
    ({"weights": "file w.pth", "weights_file": "/data/w.pth", "weights_setting": "/data/w.pth", "weights_seed": 2},
     ("/data/w.pth", 2)),
    ({"weights": "VGG16_Weights.IMAGENET1K_V1", "weights_setting": "IMAGENET1K_V1", "weights_seed": 0},
     ("IMAGENET1K_V1", 0)),
])
def test_older_stores_are_read_from_their_identity(attrs, expected):
    assert weights_of_store(attrs) == expected


@pytest.mark.parametrize("refused, message", [
    (lambda: classifiers.TorchHead(dropout=1.5).fit(np.zeros((4, 2)), [0, 1, 0, 1]), r"dropout = 1.5 must be in \[0, 1\)"),
    (lambda: classifiers.check_fuse(["pool4/avg"]), "neither \"all\" nor a list"),
    (lambda: classifiers.check_preprocessing(["standard", "standard"]), "names a step twice"),
    (lambda: classifiers.make_model("svn"), "unknown classifier 'svn'"),
    (lambda: classifiers.check_backend("spark", ""), "classifiers.backend = 'spark' is not valid"),
])
def test_a_refused_setting_is_a_setting_error_and_still_a_value_error(refused, message):
    with pytest.raises(SettingError, match=message) as raised:
        refused()
    assert isinstance(raised.value, ValueError) and isinstance(raised.value, UserError)  # scikit-learn's contract


def test_a_model_file_error_is_a_file_input_error(tmp_path):
    with pytest.raises(classifiers.ModelFileError) as raised:
        classifiers.load_model(tmp_path / "nowhere.joblib")
    assert isinstance(raised.value, FileInputError) and isinstance(raised.value, OSError)
    assert isinstance(raised.value, CnnCodesError)
