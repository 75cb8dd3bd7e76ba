"""report.html and suspect_labels.csv: the best model's mistakes and the training labels
that look wrong, through the command line and ``classifiers.write_report``."""

import csv
import json
import logging
import re
import shutil
import subprocess

import numpy as np
import pytest
from conftest import _make_images
from PIL import Image

from classifiers import (
    MAX_MISTAKES,
    MAX_SUSPECTS,
    SUSPECT_COLUMNS,
    THUMBNAIL_SIZE,
    Card,
    Gallery,
    render_page,
    thumbnail_uri,
    write_report,
)
from pipeline import load_config
from pipeline.report import report

CHROMIUM = shutil.which("chromium")
ONE_MODEL = ("--set", "classifiers.n_jobs=1", "--set", "classifiers.cv_folds=2")


@pytest.fixture
def noisy_folder(tmp_path):
    """``train/`` and ``test/`` of colour-coded cats and dogs, with three cats filed as dogs:
    two in training (suspect labels) and one in test (a mistake)."""
    root = tmp_path / "noisy"
    _make_images(root / "train", per_class=10, seed=1)
    _make_images(root / "test", per_class=4, seed=2)
    for split, name in (("train", "cat8"), ("train", "cat9"), ("test", "cat3")):
        (root / split / "cat" / f"{name}.png").rename(root / split / "dog" / f"{name}.png")
    return root


@pytest.fixture
def noisy_run(cli, write_config, noisy_folder, run_dir):
    """A whole run over ``noisy_folder`` with logreg; its config."""
    config = write_config(f'root = "{noisy_folder}"')
    code, _, err = cli("run", "-c", config, *ONE_MODEL, "--set", 'classifiers.models=["logreg"]')
    assert code == 0, err
    return config


def _suspects(run_dir):
    with open(run_dir / "suspect_labels.csv", newline="") as file:
        reader = csv.DictReader(file)
        return reader.fieldnames, list(reader)


def _figures(page: str) -> list[str]:
    return re.findall(r"<figure>(.*?)</figure>", page, re.S)


def test_the_page_shows_the_mistakes_and_the_suspect_labels_in_one_file(noisy_run, run_dir, cli):
    page = (run_dir / "report.html").read_text()
    assert re.findall(r'(?:src|href)="(?!data:)', page) == [] and "<link" not in page  # nothing outside the file
    assert "Random weights for resnet50" in page and "Best model: resnet50" in page
    assert 'table class="sortable" id="results"' in page and "Test accuracy by tap and classifier" in page
    assert page.count('src="data:image/png;base64,') == 3  # the three plots (depth, confusion, learning curves)
    (mistake,) = [figure for figure in _figures(page) if "test/dog/cat3.png" in figure]
    assert "true: dog<br>predicted: cat<br>confidence 0." in mistake and 'src="data:image/jpeg;base64,' in mistake
    assert "dog taken for cat: 1 test images" in page and "from predict_proba." in page

    columns, suspects = _suspects(run_dir)
    assert tuple(columns) == SUSPECT_COLUMNS
    assert {row["id"] for row in suspects[:2]} == {"train/dog/cat8.png", "train/dog/cat9.png"}
    assert all(row["given"] == "dog" and row["suggested"] == "cat" for row in suspects[:2])
    scores = [float(row["score"]) for row in suspects]
    assert scores == sorted(scores, reverse=True) and [row["rank"] for row in suspects[:2]] == ["1", "2"]
    (suspect,) = [figure for figure in _figures(page) if "train/dog/cat8.png" in figure]
    assert "given: dog<br>suggested: cat<br>score 0." in suspect

    code, out, _ = cli("status", "-c", noisy_run, *ONE_MODEL, "--set", 'classifiers.models=["logreg"]')
    assert code == 0, out
    stamp = json.loads((run_dir / ".stamps" / "report.json").read_text())
    best = json.loads((run_dir / "results.json").read_text())["rows"][0]
    assert f"codes resnet50 {best['tap']}/avg" in stamp["inputs"]
    assert {"report.html", "suspect_labels.csv"} <= set(stamp["outputs"])
    (run_dir / "report.html").unlink()
    code, out, _ = cli("status", "-c", noisy_run, *ONE_MODEL, "--set", 'classifiers.models=["logreg"]')
    assert code == 1 and f"report: stale ({run_dir / 'report.html'} is missing)" in out


def test_without_the_images_the_page_names_them_and_without_a_store_it_says_why(noisy_run, run_dir, noisy_folder,
                                                                                 tmp_path, caplog):
    results = json.loads((run_dir / "results.json").read_text())
    (store,) = (tmp_path / "cache").glob("*.h5")
    write_report(run_dir, results, store, source=None, progress=False)
    page = (run_dir / "report.html").read_text()
    assert "data:image/jpeg" not in page and 'class="missing">no image' in page
    assert "test/dog/cat3.png<br>true: dog<br>predicted: cat" in page
    assert len(_suspects(run_dir)[1]) >= 2  # the list needs no images

    write_report(run_dir, results, store=None, progress=False)
    page = (run_dir / "report.html").read_text()
    assert page.count("Not shown: no feature store was given to the report") == 2
    assert _suspects(run_dir) == (list(SUSPECT_COLUMNS), [])

    shutil.rmtree(noisy_folder)  # the images are gone: the report stage still writes its page
    with caplog.at_level(logging.WARNING):
        report(load_config(noisy_run), progress=False)
    assert "the images cannot be opened" in caplog.text
    assert 'class="missing">no image' in (run_dir / "report.html").read_text()


def test_the_data_review_reads_the_best_backbones_own_table_when_another_backbone_has_a_better_one(
        noisy_run, run_dir, tmp_path, caplog):
    """The store given is the best row's backbone's: a better single table of another backbone
    (whose taps that store lacks) must not be the one the review reads."""
    results = json.loads((run_dir / "results.json").read_text())
    best = min(results["rows"], key=lambda row: -row["cv_accuracy"])
    other = {**best, "backbone": "vgg16", "tap": "pool3", "cv_accuracy": best["cv_accuracy"] - 0.5}
    results["rows"].insert(0, other)
    (store,) = (tmp_path / "cache").glob("*.h5")
    with caplog.at_level(logging.INFO):
        write_report(run_dir, results, store, source=None, progress=False)
    assert "reviewing the data by the codes of pool3" not in caplog.text
    assert "reviewing the data by the codes of layer1/avg" in caplog.text or "codes of pool/avg" in caplog.text
    assert "Not reviewed" not in (run_dir / "report.html").read_text()


@pytest.mark.parametrize("model", ["ridge", "linsvm"])
def test_a_best_model_without_probabilities_ranks_by_a_softmax_of_its_scores(cli, write_config, noisy_folder,
                                                                            run_dir, model):
    config = write_config(f'root = "{noisy_folder}"')
    code, _, err = cli("run", "-c", config, *ONE_MODEL, "--set", f'classifiers.models=["{model}"]')
    assert code == 0, err
    page = (run_dir / "report.html").read_text()
    assert "Confidence: the probability of the predicted class, from softmax of decision_function (it ranks" in page
    assert "probabilities from softmax of decision_function" in page
    assert "train/dog/cat8.png" in {row["id"] for row in _suspects(run_dir)[1][:3]}


def test_a_map_head_best_model_shows_its_mistakes_and_skips_the_suspects(cli, write_config, noisy_folder, run_dir,
                                                                         one_torch_thread):
    config = write_config(f'root = "{noisy_folder}"')
    code, _, err = cli("run", "-c", config, "--set", 'features.taps.resnet50=["layer3"]',
                       "--set", 'features.pooling=["none"]', "--set", 'classifiers.models=["finetune"]',
                       "--set", "classifiers.grid.finetune.max_iter=2", "--set", "classifiers.grid.finetune.batch_size=8")
    assert code == 0, err
    page = (run_dir / "report.html").read_text()
    assert "Not computed: the best model (finetune) trains on whole maps" in page
    assert "of 8 test images are misclassified" in page and "Fine-tuning or a frozen classifier" in page
    assert _suspects(run_dir) == (list(SUSPECT_COLUMNS), [])


def test_the_page_stays_under_5_mb_with_every_thumbnail_it_may_hold(tmp_path):
    """The caps bound the page whatever the test split's size: the most thumbnails it may hold,
    each of noise (JPEG's worst case), with the plots of a run, stay under 5 MB."""
    rng = np.random.default_rng(0)
    size = (THUMBNAIL_SIZE, THUMBNAIL_SIZE, 3)
    cards = [Card(f"test/class{index % 10}/{index:05d}.png",
                  thumbnail_uri(Image.fromarray(rng.integers(0, 256, size, dtype=np.uint8))), ["true: a", "predicted: b"])
             for index in range(MAX_MISTAKES + MAX_SUSPECTS)]
    row = {"backbone": "vgg16", "weights": "imagenet", "pretrained": True, "tap": "pool4", "depth": 4, "pooling": "avg",
           "classifier": "logreg", "params": {"C": 0.1}, "n_features": 512, "cv_accuracy": 0.9, "test_accuracy": 0.9,
           "macro_f1": 0.9, "top5_accuracy": 0.99, "fit_seconds": 1.0, "predict_seconds_per_1000": 0.01,
           "confusion_matrix": np.full((10, 10), 100).tolist(), "model": "models/vgg16/pool4-avg-logreg.joblib"}
    plot = "data:image/png;base64," + "A" * 200_000  # a run's two plots take about 100 kB each
    galleries = [Gallery("Mistakes", "", [("", cards[:MAX_MISTAKES])]), Gallery("Suspect labels", "",
                                                                               [("", cards[MAX_MISTAKES:])])]
    page = render_page([row], [f"class{index}" for index in range(10)], {"a": plot, "b": plot}, "", galleries)
    assert len(page.encode()) < 5_000_000


def _column(page: str, key: str) -> list[float]:
    """The ``key`` column of the results table, top to bottom, as the page holds it now."""
    table = re.search(r'<table class="sortable" id="results">(.*?)</table>', page, re.S).group(1)
    index = re.findall(r'<th data-key="([^"]+)"', table).index(key)
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", table.split("<tbody>")[1], re.S)
    return [float(re.findall(r'<td data-sort="([^"]*)"|<td>', row)[index] or "nan") for row in rows]


@pytest.mark.skipif(CHROMIUM is None, reason="needs headless Chromium: apt-get install chromium")
def test_the_page_in_a_browser_loads_without_errors_decodes_every_thumbnail_and_sorts(noisy_run, run_dir):
    page = (run_dir / "report.html").read_text()
    before = _column(page, "n_features")
    assert len(set(before)) > 1
    order = "ascending" if before[0] > before[-1] else "descending"  # the opposite of the page's order
    url = f"{(run_dir / 'report.html').as_uri()}#selftest=n_features:{order}"
    done = subprocess.run([CHROMIUM, "--headless=new", "--disable-gpu", "--no-sandbox", "--enable-logging=stderr",
                           "--v=0", "--virtual-time-budget=5000", "--dump-dom", url],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert [line for line in done.stderr.splitlines() if ":CONSOLE" in line] == []  # no console message, no error
    found = json.loads(re.search(r'<pre id="selftest">(.*?)</pre>', done.stdout).group(1))
    assert found == {"errors": [], "images": page.count("<img "), "broken": 0, "sorted": order}
    assert found["images"] >= 5  # two plots, a mistake, two suspects
    after = _column(done.stdout, "n_features")
    assert after == sorted(before, reverse=order == "descending") and after != before
