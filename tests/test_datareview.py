"""The data review of report.html: near-duplicates, train/test leaks, outliers, class counts
and the map of the codes, through the command line, ``classifiers.review_cell`` and a browser."""

import csv
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from classifiers import (
    DUPLICATE_COLUMNS,
    MAP_POINTS,
    MAX_MISTAKES,
    MAX_OUTLIERS,
    MAX_PAIRS,
    MAX_SUSPECTS,
    OUTLIER_COLUMNS,
    THUMBNAIL_SIZE,
    Card,
    CodesMap,
    DataReviewSection,
    Gallery,
    Pair,
    render_page,
    review_cell,
    review_codes,
    sprite_uri,
    thumbnail_uri,
)
from features import FeatureStore

CHROMIUM = shutil.which("chromium")
ONE_MODEL = ("--set", "classifiers.n_jobs=1", "--set", "classifiers.cv_folds=2", "--set", 'classifiers.models=["logreg"]')


def _make_patterns(folder, per_class: int, seed: int) -> None:
    """Cats and dogs, each class a smooth pattern (a 4 x 5 grid of colours blown up to 20 x 24
    pixels) and each image its own smooth variation of it, so that no two images are alike."""
    rng = np.random.default_rng(seed)
    for name, pattern in (("cat", np.random.default_rng(10).integers(40, 216, (4, 5, 3))),
                          ("dog", np.random.default_rng(11).integers(40, 216, (4, 5, 3)))):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            grid = np.clip(pattern + rng.normal(0, 25, (4, 5, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(grid).resize((24, 20), Image.Resampling.BICUBIC).save(folder / name / f"{name}{index}.png")


@pytest.fixture
def planted_folder(tmp_path):
    """Patterned cats and dogs in ``train/`` and ``test/``, with a test image copied into
    train re-encoded as JPEG at 1.5 times its size, and a black-and-white checkerboard of single
    pixels (a scan among photos) filed among the training dogs."""
    root = tmp_path / "planted"
    _make_patterns(root / "train", per_class=12, seed=1)
    _make_patterns(root / "test", per_class=4, seed=2)
    original = Image.open(root / "test" / "cat" / "cat0.png").convert("RGB")
    original.resize((36, 30), Image.Resampling.BICUBIC).save(root / "train" / "cat" / "copy.jpg", quality=85)
    board = np.indices((20, 24)).sum(axis=0) % 2 * 255
    Image.fromarray(board.astype(np.uint8)).save(root / "train" / "dog" / "scan.png")
    return root


def _rows(path):
    with open(path, newline="") as file:
        reader = csv.DictReader(file)
        return tuple(reader.fieldnames), list(reader)


def test_a_planted_copy_is_a_leak_and_a_planted_stray_an_outlier(cli, write_config, planted_folder, run_dir):
    config = write_config(f'root = "{planted_folder}"')
    code, _, err = cli("run", "-c", config, *ONE_MODEL)
    assert code == 0, err
    columns, pairs = _rows(run_dir / "duplicates.csv")
    assert columns == DUPLICATE_COLUMNS and len(pairs) == 1
    assert pairs[0] | {"distance": None} == {
        "rank": "1", "kind": "train/test", "first_id": "train/cat/copy.jpg", "first_split": "train",
        "first_label": "cat", "second_id": "test/cat/cat0.png", "second_split": "test", "second_label": "cat",
        "distance": None}
    columns, outliers = _rows(run_dir / "outliers.csv")
    assert columns == OUTLIER_COLUMNS
    assert outliers[0]["id"] == "train/dog/scan.png" and outliers[0]["rank"] == "1"
    scores = [float(row["score"]) for row in outliers]
    assert scores == sorted(scores, reverse=True)

    page = (run_dir / "report.html").read_text()
    review = page.split('<h2 id="data-review">')[1]
    assert "1 of 8 test images have a near copy among the training images (train or val): without them" in review
    assert "Leaks: a test image and a near copy in train: 1 pairs" in review
    (pair,) = re.findall(r'<div class="pair">(.*?)</div>', review, re.S)
    assert pair.index("train/cat/copy.jpg") < pair.index("test/cat/cat0.png") and pair.count("data:image/jpeg") == 2
    assert 'id="outliers">Outliers</h3>' in review and "train/dog/scan.png<br>train, dog<br>score" in review
    counts = re.search(r'<table id="class-counts">(.*?)</table>', review).group(1)
    assert "<tr><td>cat</td><td>13</td><td>4</td></tr>" in counts and "<tr><td>dog</td><td>13</td><td>4</td></tr>" in counts
    assert '<div id="codes-map"></div>' in review and "all 34 images" in review

    stamp = json.loads((run_dir / ".stamps" / "report.json").read_text())
    assert {"duplicates.csv", "outliers.csv"} <= set(stamp["outputs"])
    (run_dir / "outliers.csv").unlink()
    code, out, _ = cli("status", "-c", config, *ONE_MODEL)
    assert code == 1 and f"report: stale ({run_dir / 'outliers.csv'} is missing)" in out


def test_a_folder_without_copies_reports_none_and_any_cell_can_be_reviewed(cli, write_config, tmp_path, run_dir):
    root = tmp_path / "clean"
    _make_patterns(root / "train", per_class=10, seed=1)
    _make_patterns(root / "test", per_class=4, seed=2)
    config = write_config(f'root = "{root}"')
    code, _, err = cli("run", "-c", config, *ONE_MODEL)
    assert code == 0, err
    assert _rows(run_dir / "duplicates.csv") == (DUPLICATE_COLUMNS, [])
    assert "No test image has a near copy among the training images." in (run_dir / "report.html").read_text()

    (store,) = (tmp_path / "cache").glob("*.h5")
    with FeatureStore(store) as codes:
        tap, pooling = codes.available()[0]
        cell = review_cell(codes, tap, pooling)
    assert cell.duplicates() == [] and len(cell.ids) == 28 and cell.found.reduced.shape[0] == 28
    assert set(cell.splits) == {"train", "test"} and np.isfinite(cell.found.score).all()


def test_beyond_the_sample_the_leaks_stay_exhaustive():
    """300 images, searched all against all among 50 of them: a test image's copy in train is
    found whichever images the sample holds, and the review says what it sampled."""
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(300, 20)).astype(np.float32)
    codes[7] = codes[250] + rng.normal(0, 1e-3, 20)  # train row 7 is a near copy of test row 250
    reduced = codes / np.linalg.norm(codes, axis=1, keepdims=True)
    splits = np.array(["train"] * 240 + ["test"] * 60)
    found = review_codes(reduced, splits, max_images=50, random_state=1)
    assert len(found.sample) == 50 and not {7, 250} <= set(found.sample.tolist())
    assert (found.first.tolist(), found.second.tolist()) == ([7], [250])
    assert np.isnan(found.score).sum() == 250 and found.distance[0] < found.threshold < found.median
    with pytest.raises(ValueError, match="max_images"):
        review_codes(reduced, splits, max_images=1)


def test_the_page_stays_under_5_mb_with_the_data_review_at_its_caps(tmp_path):
    """Every thumbnail the page may hold, of noise (JPEG's worst case): mistakes, suspects,
    pairs, outliers and a map of ``MAP_POINTS`` points with 40-character paths."""
    rng = np.random.default_rng(0)

    def noise(size):
        return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))

    def card(index):
        return Card(f"train/class{index % 10}/{index:05d}.png", thumbnail_uri(noise(THUMBNAIL_SIZE)), ["a", "b"])

    cards = [card(index) for index in range(MAX_MISTAKES + MAX_SUSPECTS + 2 * MAX_PAIRS + MAX_OUTLIERS)]
    mistakes, rest = cards[:MAX_MISTAKES], cards[MAX_MISTAKES:]
    suspects, rest = rest[:MAX_SUSPECTS], rest[MAX_SUSPECTS:]
    pairs = [Pair(rest[2 * index], rest[2 * index + 1], "distance 0.001") for index in range(MAX_PAIRS)]
    codes_map = CodesMap(rng.random((MAP_POINTS, 2)), [f"train/some-class-name/image-{index:08d}.jpeg"
                                                       for index in range(MAP_POINTS)],
                         ["train"] * MAP_POINTS, rng.integers(0, 10, MAP_POINTS), rng.integers(0, 10, MAP_POINTS),
                         rng.integers(0, 4, MAP_POINTS), [f"class{index}" for index in range(10)],
                         sprite_uri((noise(64) for _ in range(MAP_POINTS)), MAP_POINTS), "a note")
    review = DataReviewSection("note", [("Leaks", pairs)], Gallery("Outliers", "", [("", rest[2 * MAX_PAIRS:])]),
                               [f"class{index}" for index in range(10)], {"train": [1] * 10, "test": [1] * 10},
                               [False] * 10, codes_map)
    row = {"backbone": "vgg16", "weights": "imagenet", "pretrained": True, "tap": "pool4", "depth": 4, "pooling": "avg",
           "classifier": "logreg", "params": {"C": 0.1}, "n_features": 512, "cv_accuracy": 0.9, "test_accuracy": 0.9,
           "macro_f1": 0.9, "top5_accuracy": 0.99, "fit_seconds": 1.0, "predict_seconds_per_1000": 0.01,
           "confusion_matrix": np.full((10, 10), 100).tolist(), "model": "models/vgg16/pool4-avg-logreg.joblib"}
    plot = "data:image/png;base64," + "A" * 200_000
    page = render_page([row], [f"class{index}" for index in range(10)], {"a": plot, "b": plot}, "",
                       [Gallery("Mistakes", "", [("", mistakes)]), Gallery("Suspect labels", "", [("", suspects)])],
                       review)
    assert 4_000_000 < len(page.encode()) < 5_000_000


@pytest.mark.skipif(CHROMIUM is None, reason="needs headless Chromium: apt-get install chromium")
def test_the_map_in_a_browser_draws_every_image_and_hovering_shows_its_thumbnail(cli, write_config, planted_folder,
                                                                                run_dir):
    config = write_config(f'root = "{planted_folder}"')
    code, _, err = cli("run", "-c", config, *ONE_MODEL)
    assert code == 0, err
    url = f"{(run_dir / 'report.html').as_uri()}#maptest"
    done = subprocess.run([CHROMIUM, "--headless=new", "--disable-gpu", "--no-sandbox", "--enable-logging=stderr",
                           "--v=0", "--virtual-time-budget=5000", "--dump-dom", url],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert [line for line in done.stderr.splitlines() if ":CONSOLE" in line] == []
    found = json.loads(re.search(r'<pre id="maptest">(.*?)</pre>', done.stdout).group(1))
    first = json.loads(re.search(r'id="codes-map-data">(.*?)</script>', done.stdout, re.S).group(1))["points"][0]
    assert found["errors"] == [] and found["points"] == 34 and found["shown"] and found["zoomed"]
    assert found["text"].startswith(f"{first[5]}\n{first[6]}, label: ") and "predicted: " in found["text"]
    assert found["painted"] > 0.5  # the thumbnail's tile was drawn into the tooltip
