"""Whole maps in the store (pooling none, its budget) and augmented views (rows, groups, folds)."""

import logging

import h5py
import numpy as np
import pytest
from PIL import Image

from classifiers import Tuning, load_codes, select_model
from features import AugmentedViews, FeatureStore, ImageFolder, Recipe, Runtime, extract_codes, resolve_weights, verify_store

WEIGHTS = resolve_weights("resnet50", "random")


def _extract(source, cache, taps=("layer1",), poolings=("avg", "none"), **options):
    budget = {"map_budget_gb": options.pop("map_budget_gb")} if "map_budget_gb" in options else {}
    return extract_codes(source, Recipe(WEIGHTS, image_size=32, **options), taps=list(taps), poolings=list(poolings),
                         cache_dir=cache,
                         runtime=Runtime(batch_size=5, num_workers=0, progress=False, **budget))


def test_maps_are_stored_whole_in_float16_chunked_by_rows(image_folder, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="features.extraction"):
        done = _extract(ImageFolder(image_folder), tmp_path / "cache")
    assert "resnet50 layer1/none map 256x8x8: 16 rows x 32.8 kB = 0.00 GB (budget 8.0 GB)" in caplog.text
    with h5py.File(done.path) as file:  # plain h5py sees (N, C, H, W)
        maps = file["features/layer1/none"]
        assert maps.shape == (16, 256, 8, 8) and maps.dtype == np.float16 and maps.chunks[1:] == (256, 8, 8)
        assert file.attrs["map_dtype"] == "float16" and file["features/layer1/avg"].dtype == np.float32
    with FeatureStore(done.path) as store:
        X, y = store.codes("layer1", "none", "train")
        avg, _ = store.codes("layer1", "avg", "train")
    assert X.dtype == np.float16 and X.shape == (12, 256, 8, 8) and len(y) == 12  # read as stored
    np.testing.assert_allclose(X.astype(np.float32).mean(axis=(2, 3)), avg, rtol=1e-2, atol=1e-3)
    assert verify_store(done.path) == []


def test_map_dtype_is_its_own_file_and_float32_maps_are_exact(image_folder, tmp_path):
    half = _extract(ImageFolder(image_folder), tmp_path / "cache")
    full = _extract(ImageFolder(image_folder), tmp_path / "cache", map_dtype="float32")
    assert full.path != half.path
    with FeatureStore(full.path) as store:
        X, _ = store.codes("layer1", "none")
        avg, _ = store.codes("layer1", "avg")
    assert X.dtype == np.float32
    np.testing.assert_allclose(X.mean(axis=(2, 3)), avg, rtol=1e-5, atol=1e-6)


def test_a_map_over_the_budget_is_refused_before_any_work(image_folder, tmp_path, forward_calls):
    with pytest.raises(ValueError, match=r"the layer1 map of resnet50 at 32 x 32 would take 0.00 GB \(16 rows x "
                                         r"32.8 kB of float16\), over the map budget of 0.0001 GB \(features.map_budget_gb\)"):
        _extract(ImageFolder(image_folder), tmp_path / "cache", map_budget_gb=0.0001)
    assert forward_calls == [] and not list((tmp_path / "cache").glob("*.h5"))
    _extract(ImageFolder(image_folder), tmp_path / "cache", poolings=["avg"], map_budget_gb=0.0001)  # no map: fine


def test_views_are_extra_training_rows_with_their_image_as_group(split_image_folder):
    source = ImageFolder(split_image_folder)
    views = AugmentedViews(source, views=2, seed=0)
    n_train = int((source.splits == "train").sum())
    assert len(views) == len(source) + 2 * n_train
    assert views.ids[:len(source)] == source.ids and views.groups[:len(source)] == source.ids
    first_train = source.ids[int(np.flatnonzero(source.splits == "train")[0])]
    assert views.ids[len(source):len(source) + 2] == [f"{first_train}#view1", f"{first_train}#view2"]
    assert set(views.groups[len(source):]) <= set(np.array(source.ids)[source.splits == "train"])
    assert set(views.splits[len(source):]) == {"train"}  # test images keep their plain view only
    pixels = [np.asarray(views.load(index)) for index in range(len(source), len(source) + 2)]
    plain = np.asarray(source.load(int(np.flatnonzero(source.splits == "train")[0])))
    assert not np.array_equal(pixels[0], pixels[1]) and all(p.shape[0] <= plain.shape[0] for p in pixels)
    again = AugmentedViews(ImageFolder(split_image_folder), views=2, seed=0)
    assert np.array_equal(np.asarray(again.load(len(source))), pixels[0])  # seeded: same crop every time
    other = AugmentedViews(ImageFolder(split_image_folder), views=2, seed=1)
    assert other.row_fingerprints[len(source)] != views.row_fingerprints[len(source)]


def test_a_view_of_the_whole_area_is_the_picture_or_its_mirror(split_image_folder):
    """view_area = 1 for small centred objects that a crop would lose: only mirrors; the
    default's views keep the fingerprints (and store rows) they had before the setting."""
    source = ImageFolder(split_image_folder)
    whole = AugmentedViews(source, views=3, seed=0, view_area=1.0)
    default = AugmentedViews(source, views=3, seed=0)
    first = int(np.flatnonzero(source.splits == "train")[0])
    plain = np.asarray(source.load(first))
    loaded = [np.asarray(whole.load(len(source) + view)) for view in range(3)]
    assert all(np.array_equal(pixels, plain) or np.array_equal(pixels, plain[:, ::-1]) for pixels in loaded)
    assert any(np.array_equal(pixels, plain[:, ::-1]) for pixels in loaded)
    assert default.row_fingerprints[len(source)] == source.row_fingerprints[first] + "|view1|seed0"
    assert whole.row_fingerprints[len(source)] == default.row_fingerprints[len(source)] + "|area1"
    with pytest.raises(ValueError, match="view_area = 0 must be between 0 and 1"):
        AugmentedViews(source, views=1, view_area=0)


def test_a_view_crops_the_same_region_of_a_reduced_scale_decode(tmp_path):
    """fast_decode may hand the views a smaller picture: the crop is drawn in fractions of it."""
    gradient = np.tile(np.linspace(0, 255, 800, dtype=np.float32), (600, 1))
    pixels = np.stack([gradient, gradient.T[:600, :600].repeat(2, axis=1)[:, :800], np.zeros((600, 800))], axis=2)
    for split in ("train", "test"):
        for label in ("a", "b"):
            (tmp_path / split / label).mkdir(parents=True)
            Image.fromarray(pixels.astype(np.uint8)).save(tmp_path / split / label / "big.jpg", quality=95)
    views = AugmentedViews(ImageFolder(tmp_path), views=1, seed=0)
    view = len(views) - 1
    full, reduced = views.load(view), views.load(view, min_side=40)
    assert reduced.size[0] < full.size[0]
    shrunk = np.asarray(full.resize(reduced.size, Image.BILINEAR), dtype=np.float32)
    assert np.abs(shrunk - np.asarray(reduced, dtype=np.float32)).mean() < 6  # same region, other scale
    mirrors = AugmentedViews(ImageFolder(tmp_path), views=1, seed=0, view_area=1.0)  # no crop: decoded as small
    plain = mirrors.source.load(int(mirrors.image_of[view]), min_side=70)  # as the plain image: 1/8 scale, 100x75
    assert mirrors.load(view, min_side=70).size == plain.size == (100, 75)


def test_views_share_the_store_and_come_back_with_groups(split_image_folder, tmp_path, forward_calls):
    plain = _extract(ImageFolder(split_image_folder), tmp_path / "cache", poolings=["avg"])
    forward_calls.clear()
    viewed = _extract(AugmentedViews(ImageFolder(split_image_folder), views=2), tmp_path / "cache", poolings=["avg"])
    assert viewed.path == plain.path and sum(forward_calls) == 24  # 2 views of 12 training images, nothing else
    codes = load_codes(viewed.path, "layer1", "avg")
    assert len(codes.y_fit) == 36 and codes.n_views == 24 and len(set(codes.groups_fit)) == 12
    assert len(codes.y_test) == 6
    with h5py.File(viewed.path) as file:
        assert "train/cat/cat0.png#view1" in file["samples/id"].asstr()[()]
        assert set(file["samples/group"].asstr()[()]) == set(ImageFolder(split_image_folder).ids)
    forward_calls.clear()
    fewer = _extract(AugmentedViews(ImageFolder(split_image_folder), views=1), tmp_path / "cache", poolings=["avg"])
    assert forward_calls == [] and load_codes(fewer.path, "layer1", "avg").n_views == 12  # view 2 left, kept aside


def test_cross_validation_never_splits_the_views_of_one_image():
    """Views of an image are near-copies: with them on both sides of a fold, 1-NN finds its
    own copy and scores about 100 % on labels that are pure noise."""
    rng = np.random.default_rng(0)
    images, views = 60, 3
    X_images, y_images = rng.normal(size=(images, 8)), rng.integers(0, 2, images)
    X = np.repeat(X_images, views, axis=0) + rng.normal(scale=1e-3, size=(images * views, 8))
    y, groups = np.repeat(y_images, views), np.repeat(np.arange(images), views).astype(str)
    grid = {"n_neighbors": 1, "weights": "uniform"}
    leaky = select_model("knn", X, y, Tuning(grid={"knn": grid}, cv_folds=3))
    assert leaky.cv_accuracy > 0.95
    grouped = select_model("knn", X, y, Tuning(grid={"knn": grid}, cv_folds=3), groups=groups)
    assert grouped.cv_accuracy < 0.7


def test_cross_validation_scores_the_plain_images_not_their_views():
    """Views train but are not what is measured: here they are pure noise, so scoring them
    would cost accuracy, while the plain images are perfectly separable."""
    rng = np.random.default_rng(1)
    images, views = 40, 2
    y_images = np.arange(images) % 2
    plain = y_images[:, None] * 10.0 + rng.normal(scale=0.1, size=(images, 4))
    X = np.concatenate([plain, rng.normal(scale=50, size=(images * views, 4))])
    y = np.concatenate([y_images, np.repeat(y_images, views)])
    groups = np.concatenate([np.arange(images), np.repeat(np.arange(images), views)]).astype(str)
    is_view = np.arange(len(y)) >= images
    grid = {"n_neighbors": 1, "weights": "uniform"}
    everything = select_model("knn", X, y, Tuning(grid={"knn": grid}, cv_folds=4), groups=groups)
    plain_only = select_model("knn", X, y, Tuning(grid={"knn": grid}, cv_folds=4), groups=groups, views=is_view)
    assert plain_only.cv_accuracy > 0.9 > 0.75 > everything.cv_accuracy
