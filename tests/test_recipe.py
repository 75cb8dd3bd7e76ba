"""The recipe: the one definition of a store's name, its attributes, a model's spec and the check at predict time."""

import dataclasses

import numpy as np
import pytest
from torchvision.models import get_model_weights

from features import ImageArrays, Recipe, ResolvedWeights, Runtime, resolve_weights, spec_differences, spec_of_store
from pipeline.config import FeaturesSection

PINNED = ImageArrays(np.zeros((4, 8, 8, 3), np.uint8), [0, 1, 0, 1], classes=["a", "b"],
                     splits=["train", "train", "test", "test"], name="pinned")


def _imagenet(backbone):
    default = get_model_weights(backbone).DEFAULT
    return ResolvedWeights(backbone, str(default), str(default), url=default.url)


@pytest.mark.parametrize("weights, settings, name", [
    # names made by the code before the recipe existed: every cache made since must still be found
    (_imagenet("vgg16"), {"image_size": 224}, "pinned-vgg16-3f5d83511717c132.h5"),
    (resolve_weights("resnet50", "random"), {"image_size": 32}, "pinned-resnet50-6067c560548c7afa.h5"),
    (resolve_weights("vgg16", "random"), {"image_size": 32}, "pinned-vgg16-c990a660518baf79.h5"),
    (resolve_weights("resnet50", "random"), {"image_size": 32, "precision": "bfloat16", "decode_on_device": True,
                                             "fast_decode": False, "dtype": "float16"},
     "pinned-resnet50-a0d6f5473287d276.h5"),
])
def test_store_names_are_those_of_existing_caches(weights, settings, name):
    assert Recipe(weights, **settings).store_path("cache", PINNED).name == name


def test_how_the_network_runs_is_not_in_the_recipe():
    recipe_fields = {field.name for field in dataclasses.fields(Recipe)}
    runtime_fields = {field.name for field in dataclasses.fields(Runtime)}
    assert not recipe_fields & runtime_fields
    assert {"device", "batch_size", "num_workers", "channels_last", "compile", "progress"} <= runtime_fields


def test_the_config_has_the_recipes_and_runtimes_defaults():
    section = FeaturesSection()
    for cls in (Recipe, Runtime):
        for field in dataclasses.fields(cls):
            if hasattr(section, field.name) and field.default is not dataclasses.MISSING:
                assert getattr(section, field.name) == field.default, field.name


def test_a_models_spec_gives_back_its_recipe():
    weights = resolve_weights("resnet50", "random")
    recipe = Recipe(weights, image_size=40, fast_decode=False, map_dtype="float32", precision="bfloat16",
                    decode_on_device=True)
    assert Recipe.from_spec(recipe.spec("layer1", "none"), weights) == recipe
    plain = Recipe(weights, image_size=40)
    assert Recipe.from_spec(plain.spec("layer1", "avg"), weights) == plain


def test_a_stores_attributes_hold_the_recipes_spec():
    recipe = Recipe(resolve_weights("resnet50", "random"), image_size=32, precision="bfloat16")
    attrs = recipe.store_attrs(PINNED)
    for pooling in ("avg", "none"):
        assert spec_of_store(attrs, "layer2", pooling) == recipe.spec("layer2", pooling)


def test_specs_are_compared_both_ways_with_defaults():
    weights = resolve_weights("resnet50", "random")
    plain, half = (Recipe(weights, image_size=32, precision=name).spec("layer1", "avg")
                   for name in ("float32", "bfloat16"))
    assert "precision" not in plain  # a default is left out, so old stores and models keep their names
    assert spec_differences(plain, plain) == []
    assert spec_differences({**plain, "n_features": 64}, plain) == []  # what only a model records
    assert spec_differences(half, plain) == ["precision: model 'bfloat16', features 'float32'"]
    assert spec_differences(plain, half) == ["precision: model 'float32', features 'bfloat16'"]
    assert spec_differences(plain, {**plain, "image_size": 64}) == ["image_size: model None, features 64"]


def test_bad_recipe_values_are_refused_by_name():
    weights = resolve_weights("resnet50", "random")
    with pytest.raises(ValueError, match="dtype = 'int8' is not valid; valid choices: float32, float16"):
        Recipe(weights, dtype="int8")
    with pytest.raises(ValueError, match=r"image_size = 0 must be at least 1 \(e.g. 224\)"):
        Recipe(weights, image_size=0)
