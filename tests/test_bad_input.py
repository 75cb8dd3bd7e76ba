"""Bad input: unreadable images are skipped and recorded (or stop the run), never silently."""

import os

import numpy as np
import pytest
from PIL import Image

from features import FeatureStore, ImageError, ImageFolder, Recipe, Runtime, extract_codes, resolve_weights, verify_store

RECIPE = Recipe(resolve_weights("resnet50", "random"), image_size=32)


def _extract(root, cache, **options):
    return extract_codes(ImageFolder(root), RECIPE, taps=["layer1"], poolings=["avg"], cache_dir=cache,
                         runtime=Runtime(batch_size=5, progress=False),
                         **options)


@pytest.fixture
def bad_folder(image_folder, monkeypatch):
    """The image folder plus one file of each kind of bad input."""
    good = (image_folder / "cat" / "cat0.png").read_bytes()
    (image_folder / "cat" / "empty.png").write_bytes(b"")
    (image_folder / "cat" / "truncated.png").write_bytes(good[: len(good) // 2])
    (image_folder / "dog" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)
    (image_folder / "dog" / "notes.png").write_text("not an image at all")
    Image.new("RGB", (100, 100)).save(image_folder / "dog" / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)  # so that a 100 x 100 image is "too large"
    return image_folder


BAD = ["cat/empty.png", "cat/truncated.png", "dog/bomb.png", "dog/corrupt.jpg", "dog/notes.png"]


def test_skip_records_each_bad_file_and_lists_it_every_run(bad_folder, tmp_path, caplog, forward_calls):
    done = _extract(bad_folder, tmp_path / "cache")
    assert sorted(sample_id for sample_id, _ in done.skipped) == BAD
    reasons = dict(done.skipped)
    assert "too large to be real" in reasons["dog/bomb.png"] and "MAX_IMAGE_PIXELS" in reasons["dog/bomb.png"]
    assert all(f"skipped (recorded in the store; fix or remove the file): {reason}" in caplog.text
               for reason in reasons.values())
    with FeatureStore(done.path) as store:
        assert sorted(sample_id for sample_id, _ in store.skipped) == BAD
        X, _ = store.codes("layer1", "avg")
        assert len(X) == 16 and np.isfinite(X).all()
    assert verify_store(done.path) == []

    forward_calls.clear()
    caplog.clear()
    again = _extract(bad_folder, tmp_path / "cache")
    assert forward_calls == [] and sorted(sample_id for sample_id, _ in again.skipped) == BAD
    assert caplog.text.count("skipped (recorded in the store") == 5

    Image.new("RGB", (24, 20), "red").save(bad_folder / "cat" / "empty.png")  # fixed: read again
    fixed = _extract(bad_folder, tmp_path / "cache")
    assert fixed.computed_rows == ["cat/empty.png"] and len(fixed.skipped) == 4


def test_fail_stops_naming_the_file_and_keeps_the_rows_computed(image_folder, tmp_path, forward_calls):
    (image_folder / "dog" / "dog5.png").write_bytes(b"")  # row 13: in the third batch of 5
    with pytest.raises(ImageError, match=r"cannot read image .*dog/dog5.png.*on_error = \"fail\"\): the 14 images "
                                         r"computed so far are kept"):
        _extract(image_folder, tmp_path / "cache", on_error="fail")
    assert forward_calls == [5, 5, 4]
    (path,) = (tmp_path / "cache").glob("*.h5")
    assert verify_store(path) == ["/features/layer1/avg: 1 of 15 rows in use are not written (run extract to "
                                  "finish them)"]  # dog7, after the failure; dog5 is recorded as unreadable

    Image.new("RGB", (24, 20), "blue").save(image_folder / "dog" / "dog5.png")
    forward_calls.clear()
    done = _extract(image_folder, tmp_path / "cache", on_error="fail")
    assert forward_calls == [2] and done.computed_rows == ["dog/dog5.png", "dog/dog7.png"]
    assert verify_store(done.path) == [] and done.skipped == []


def test_a_file_name_that_is_not_utf8_is_stored_escaped(image_folder, tmp_path):
    with open(os.fsencode(image_folder / "cat") + b"/\xff\xfe.png", "wb") as file:
        file.write((image_folder / "cat" / "cat1.png").read_bytes())
    done = _extract(image_folder, tmp_path / "cache")
    with FeatureStore(done.path) as store:
        assert "cat/\\xff\\xfe.png" in store.ids and len(store.codes("layer1", "avg")[0]) == 17


def test_a_missing_root_or_a_folder_without_images_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="image folder .*nowhere does not exist; set data.root"):
        ImageFolder(tmp_path / "nowhere")
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no images found under .*empty"):
        ImageFolder(tmp_path / "empty")
