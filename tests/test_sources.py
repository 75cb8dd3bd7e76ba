"""Image sources: the sample table each one builds, and their errors."""

import numpy as np
import pytest

from features import ImageFolder, open_named_dataset


def test_digits_are_real_images_with_a_stratified_seeded_split():
    source = open_named_dataset("digits", test_size=0.25, seed=0)
    assert len(source) == 1797 and source.classes == [str(d) for d in range(10)]
    assert source.load(0).mode == "RGB" and source.load(0).size == (8, 8)
    assert source.images.max() == 255
    test_share = [(source.splits[source.labels == c] == "test").mean() for c in range(10)]
    assert np.allclose(test_share, 0.25, atol=0.02)
    again = open_named_dataset("digits", test_size=0.25, seed=0)
    assert again.fingerprint == source.fingerprint
    assert open_named_dataset("digits", test_size=0.25, seed=1).fingerprint != source.fingerprint


def test_image_folder_classes_ids_and_rgb(image_folder):
    source = ImageFolder(image_folder, test_size=0.25, seed=0)
    assert source.classes == ["cat", "dog"]
    assert source.ids[:2] == ["cat/cat0.png", "cat/cat1.png"]
    assert {source.load(i).mode for i in range(len(source))} == {"RGB"}  # from L, RGBA, P
    assert sorted(source.splits).count("test") == 4


def test_split_folders_give_the_splits(split_image_folder):
    source = ImageFolder(split_image_folder)
    assert source.classes == ["cat", "dog"]
    assert dict(zip(*np.unique(source.splits, return_counts=True))) == {"test": 6, "train": 12}
    assert source.ids[0] == "test/cat/cat0.png"


def test_a_changed_file_changes_the_fingerprint(image_folder):
    before = ImageFolder(image_folder).fingerprint
    (image_folder / "dog" / "dog0.png").write_bytes((image_folder / "cat" / "cat0.png").read_bytes())
    assert ImageFolder(image_folder).fingerprint != before


def test_a_folder_without_images_says_what_layout_is_expected(tmp_path):
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "notes.txt").write_text("no images here")
    with pytest.raises(FileNotFoundError, match="no images found under .*<root>/<class>/<image>"):
        ImageFolder(tmp_path)
