"""Extraction speed: the whole extract stage against the bare forward and a naive loop.

For each backbone x input size x batch size it measures, in one run and on one machine:

- ``bare``: the tap extractor's forward on a tensor already in memory (same model, taps,
  batch, precision and threads): the ceiling;
- ``pipeline``: ``python -m pipeline extract`` on JPEG photos on disk, into a fresh HDF5
  cache, as a user runs it (a separate process: its start-up is counted);
- ``naive``: the tutorial loop: decode each image in the main process, float32, no
  workers, codes gathered in Python lists, saved with numpy.

Each rate is taken at the margin, ``2N / (time(3N images) - time(N images))``, so that
start-up (imports, model build, opening files) neither hides nor fakes a difference;
start-up is reported on its own as ``time(N) - N / rate``. This machine's speed drifts by
10-20 % over minutes, so each case runs ``--repeats`` rounds of (bare, pipeline, naive)
back to back and reports medians, and the ratios are medians of each round's ratios.

The files are JPEGs cut from scikit-learn's two bundled photos, each crop distinct, at a
size that suits the input: 640x480 photos for 224x224 inputs, 96x72 thumbnails for 64x64
(the size of data people run at 64x64; full-size photos at 224 are the photo benchmark's).

Then: reading speed of one cached (tap, pooling) dataset for a split (MB/s), and the fit
seconds of each zoo entry on 10,000 x 2,048 synthetic codes.

    python benchmarks/extraction.py                      # everything, prints Markdown
    python benchmarks/extraction.py --backbones resnet50 --sizes 224 --batch-sizes 32
    python benchmarks/extraction.py --out benchmarks/RESULTS.md   # also appends there

Not a test: minutes on a laptop CPU.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, installed or not

from classifiers import ZOO, make_model  # noqa: E402
from features import get_backbone, read_codes, resolve_weights  # noqa: E402
from features.store import SampleTable, rewrite_store  # noqa: E402
from features.weights import build_tap_extractor, preprocessing  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def photo_size(input_size: int) -> tuple[int, int]:
    """640x480 for ImageNet-sized inputs; 1.5 x the input (4:3) for small ones."""
    return (640, 480) if input_size > 96 else (round(1.5 * input_size), round(1.125 * input_size))


def make_photos(folder: Path, count: int, seed: int, size: tuple[int, int]) -> Path:
    """``count`` distinct JPEGs of ``size`` in two class folders, cut from real photos."""
    from sklearn.datasets import load_sample_images

    photos = [Image.fromarray(image) for image in load_sample_images().images]
    rng = np.random.default_rng(seed)
    for index in range(count):
        photo = photos[index % 2]
        scale = rng.uniform(0.6, 1.0)
        width, height = int(photo.width * scale), int(photo.height * scale)
        left, top = rng.integers(0, photo.width - width + 1), rng.integers(0, photo.height - height + 1)
        crop = photo.crop((left, top, left + width, top + height)).resize(size, Image.BILINEAR)
        (folder / f"class{index % 2}").mkdir(parents=True, exist_ok=True)
        crop.save(folder / f"class{index % 2}" / f"{index:05d}.jpg", quality=90)
    return folder


def at_margin(measure, n: int) -> tuple[float, float]:
    """``(images/s at the margin, start-up seconds)`` from ``measure(count) -> seconds``."""
    once, thrice = measure(n), measure(3 * n)
    rate = 2 * n / (thrice - once)
    return rate, max(once - n / rate, 0.0)


def bare(backbone: str, taps: list[str], size: int, batch: int, n: int) -> tuple[float, float]:
    extractor = build_tap_extractor(resolve_weights(backbone, "random"), taps)
    images = torch.randn(batch, 3, size, size)

    def measure(count: int) -> float:
        started = time.perf_counter()
        with torch.inference_mode():
            for _ in range(count // batch):
                extractor(images)
        return time.perf_counter() - started

    with torch.inference_mode():
        extractor(images)  # warm-up: first-call allocations
    return at_margin(measure, n)


def naive(backbone: str, taps: list[str], size: int, batch: int, n: int, folders: dict) -> tuple[float, float]:
    """The loop of a tutorial, on the same files, model and taps."""
    weights = resolve_weights(backbone, "random")
    transform = preprocessing(weights, size)

    def measure(count: int) -> float:
        started = time.perf_counter()
        extractor = build_tap_extractor(weights, taps)
        codes = {tap: [] for tap in taps}
        files = sorted(folders[count].rglob("*.jpg"))
        with torch.inference_mode():
            for first in range(0, len(files), batch):
                images = torch.stack([transform(Image.open(file).convert("RGB")) for file in files[first:first + batch]])
                outputs = extractor(images)
                for tap in taps:
                    activation = outputs[tap]
                    pooled = activation.mean(dim=(2, 3)) if activation.ndim == 4 else activation
                    codes[tap] += list(pooled.numpy())
        with tempfile.TemporaryDirectory() as out:
            for tap in taps:
                np.save(Path(out) / f"{tap}.npy", np.stack(codes[tap]))
        return time.perf_counter() - started

    return at_margin(measure, n)


def pipeline(backbone: str, taps: list[str], size: int, batch: int, n: int, folders: dict, workers: int,
             scratch: Path) -> tuple[float, float]:
    """``python -m pipeline extract`` as a user runs it, into a fresh cache each time."""

    def measure(count: int) -> float:
        run = scratch / f"run-{count}-{time.perf_counter_ns()}"
        config = run / "config.toml"
        run.mkdir(parents=True)
        config.write_text(textwrap.dedent(f"""\
            [data]
            root = "{folders[count]}"
            [features]
            backbones = ["{backbone}"]
            weights = "random"
            image_size = {size}
            batch_size = {batch}
            num_workers = {workers}
            cache_dir = "cache"
            [features.taps]
            {backbone} = {taps!r}
            [run]
            dir = "run"
            """).replace("'", '"'))
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pipeline", "extract", "-q", "-c", str(config)], cwd=ROOT, check=True)
        return time.perf_counter() - started

    return at_margin(measure, n)


def extraction_rows(args, scratch: Path) -> list[dict]:
    rows = []
    photos = {}  # (count, size) -> folder, shared by every case

    def folder(count: int, size: tuple[int, int]) -> Path:
        if (count, size) not in photos:
            photos[count, size] = make_photos(scratch / f"photos-{count}-{size[0]}x{size[1]}", count, count, size)
        return photos[count, size]

    for size in args.sizes:
        for batch in args.batch_sizes:
            for backbone in args.backbones:
                taps = args.taps or list(get_backbone(backbone).default_taps)
                rate, _ = bare(backbone, taps, size, batch, 2 * batch)  # a first estimate, to size N
                # N: the 2N images of the margin take about --seconds of bare forward
                n = args.n or batch * max(2, round(args.seconds * rate / 2 / batch))
                folders = {count: folder(count, photo_size(size)) for count in (n, 3 * n)}
                rounds = []
                for _ in range(args.repeats):
                    measured = {"bare": bare(backbone, taps, size, batch, n),
                                "pipeline": pipeline(backbone, taps, size, batch, n, folders, args.workers, scratch),
                                "naive": naive(backbone, taps, size, batch, n, folders)}
                    rounds.append(measured)
                    print(f"{backbone} {size}px batch {batch} N {n}: " + ", ".join(
                        f"{name} {rate:.1f} images/s" for name, (rate, _) in measured.items()), file=sys.stderr)
                median = lambda values: float(np.median(values))  # noqa: E731
                rows.append({
                    "backbone": backbone, "size": size, "batch": batch, "taps": len(taps), "n": n,
                    "files": "x".join(map(str, photo_size(size))),
                    **{name: median([r[name][0] for r in rounds]) for name in ("bare", "pipeline", "naive")},
                    "start-up": median([r["pipeline"][1] for r in rounds]),
                    "pipeline / bare": median([r["pipeline"][0] / r["bare"][0] for r in rounds]),
                    "pipeline / naive": median([r["pipeline"][0] / r["naive"][0] for r in rounds]),
                })
    return rows


def reading_rate(scratch: Path, rows: int = 20_000, width: int = 2048) -> dict:
    """MB/s of ``read_codes`` for the train split of one dataset in a store with two."""
    rng = np.random.default_rng(0)
    splits = np.where(np.arange(rows) % 4 == 0, "test", "train")
    table = SampleTable([f"image{row}" for row in range(rows)], ["0:0"] * rows, np.arange(rows) % 10, splits,
                        [""] * rows, [f"class{label}" for label in range(10)])
    path = scratch / "reading.h5"

    def write_codes(put):
        for pooling in ("avg", "max"):
            for first in range(0, rows, 4096):
                block = np.arange(first, min(first + 4096, rows))
                put("pool", pooling, block, rng.standard_normal((len(block), width), dtype=np.float32))

    rewrite_store(path, table, {"backbone": "resnet50", "dtype": "float32"}, write_codes)
    started = time.perf_counter()
    X, _ = read_codes(path, "pool", "avg", "train")
    seconds = time.perf_counter() - started
    return {"rows": len(X), "width": width, "MB": X.nbytes / 1e6, "seconds": seconds, "MB/s": X.nbytes / 1e6 / seconds}


def fit_seconds(models: list[str], rows: int = 10_000, width: int = 2048) -> list[dict]:
    """Seconds to fit each zoo entry (its estimator's defaults) on synthetic codes."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((10, width)).astype(np.float32)
    y = rng.integers(0, 10, rows)
    X = np.abs(centres[y] + 2 * rng.standard_normal((rows, width), dtype=np.float32))  # post-ReLU-like
    results = []
    for name in models:
        model = make_model(name, random_state=0)
        started = time.perf_counter()
        model.fit(X, y)
        results.append({"model": name, "seconds": time.perf_counter() - started})
        print(f"fit {name}: {results[-1]['seconds']:.1f} s", file=sys.stderr)
    return results


def markdown(extraction: list[dict], reading: dict | None, fits: list[dict], args) -> str:
    lines = [
        f"### Extraction speed, {date.today().isoformat()}",
        "",
        f"Machine: {os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), "
        f"{'GPU ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU'}; Python "
        f"{platform.python_version()}, torch {torch.__version__}, torchvision {torchvision.__version__}, "
        f"{torch.get_num_threads()} torch threads. Command: `python benchmarks/extraction.py "
        f"{' '.join(sys.argv[1:])}`. JPEG files; random weights (speed does not depend on "
        f"their values); the backbone's default taps; pipeline `num_workers = {args.workers}`.",
        "",
    ]
    if extraction:
        lines += [
            f"Images/s at the margin (N and 3N images), medians of {args.repeats} rounds; start-up (command "
            "to first batch, imports included) in seconds:",
            "",
            "| backbone | input | files | batch | taps | N | bare forward | pipeline | pipeline / bare | "
            "start-up s | naive | pipeline / naive |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        lines += [
            f"| {r['backbone']} | {r['size']} | {r['files']} | {r['batch']} | {r['taps']} | {r['n']} | "
            f"{r['bare']:.1f} | {r['pipeline']:.1f} | {100 * r['pipeline / bare']:.0f} % | {r['start-up']:.1f} | "
            f"{r['naive']:.1f} | {r['pipeline / naive']:.2f}x |"
            for r in extraction
        ]
        lines.append("")
    if reading:
        lines += [f"Reading one cached dataset (`read_codes`, train split, {reading['rows']} x {reading['width']} "
                  f"float32 of a store holding two such datasets): {reading['MB']:.0f} MB in "
                  f"{reading['seconds']:.2f} s, {reading['MB/s']:.0f} MB/s.", ""]
    if fits:
        lines += ["Fit seconds on 10,000 x 2,048 synthetic codes (default preprocessing, each estimator's "
                  "own defaults, no search):", "",
                  "| " + " | ".join(fit["model"] for fit in fits) + " |",
                  "|" + " --- |" * len(fits),
                  "| " + " | ".join(f"{fit['seconds']:.1f}" for fit in fits) + " |", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=["vgg16", "resnet50"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[64, 224])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[16, 32])
    parser.add_argument("--taps", nargs="+", help="default: each backbone's default taps")
    parser.add_argument("--n", type=int, help="N images (default: what the bare forward does in --seconds / 2)")
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="bare-forward seconds of the 2N-image margin (default 20): longer is steadier")
    parser.add_argument("--workers", type=int, default=2, help="the pipeline's num_workers (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds per case; medians are reported (default 3)")
    parser.add_argument("--models", nargs="*", default=[name for name in ZOO if not name.endswith("head")],
                        help="zoo entries to time on 10,000 x 2,048 codes (none: skip)")
    parser.add_argument("--no-extraction", action="store_true", help="only reading and fit times")
    parser.add_argument("--out", type=Path, help="also append the Markdown to this file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cnncodes-bench-") as scratch:
        extraction = [] if args.no_extraction else extraction_rows(args, Path(scratch))
        reading = reading_rate(Path(scratch))
    fits = fit_seconds(args.models) if args.models else []
    text = markdown(extraction, reading, fits, args)
    print(text)
    if args.out:
        with open(args.out, "a") as file:
            file.write("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
