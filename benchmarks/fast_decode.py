"""Does reduced-scale JPEG decoding change accuracy? The same images as large JPEGs, run twice.

Reduced-scale decoding (``features.fast_decode``, on by default) lets the JPEG codec
decode a large photo at 1/2, 1/4 or 1/8 scale before the resize, so the network sees
slightly different pixels. This benchmark measures what that does to accuracy:

1. it copies an image folder as large JPEGs (each image upscaled to ``--side`` pixels,
   bicubic, quality 90, the folder layout kept);
2. it runs the pipeline (extract, fit, report) on that copy twice with the same config,
   ``features.fast_decode`` on and off, each into its own run folder and store;
3. it prints the test accuracy of every (tap, classifier) both ways and the difference,
   and the extract stage's seconds both ways.

    python benchmarks/fast_decode.py benchmarks/fashion-vgg16-large.toml \\
        --images benchmarks/data/fashion-mnist --out benchmarks/RESULTS.md

The config's ``data.root`` is where the large copy goes; its other settings are the run's.
Not a test: minutes (two extractions of every image).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, installed or not

from benchmarks.extraction import publish  # noqa: E402
from features.sources import IMAGE_EXTENSIONS  # noqa: E402
from pipeline.config import load_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def make_large(images: Path, out: Path, side: int) -> int:
    """Every image under ``images`` upscaled to ``side`` x ``side`` as a JPEG under ``out``, same layout."""
    files = sorted(file for file in images.rglob("*") if file.suffix.lower() in IMAGE_EXTENSIONS)
    for file in files:
        target = (out / file.relative_to(images)).with_suffix(".jpg")
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            with Image.open(file) as image:
                image.convert("RGB").resize((side, side), Image.BICUBIC).save(target, quality=90)
    return len(files)


def run_pipeline(config: Path, fast: bool) -> tuple[Path, float]:
    """``(run folder, extract seconds)`` of the pipeline on ``config`` with fast decoding on or off."""
    name = "fast" if fast else "full"
    loaded = load_config(config)
    run_dir = Path(loaded.run.dir).with_name(f"{Path(loaded.run.dir).name}-{name}")
    options = ["-c", str(config), "--set", f"features.fast_decode={str(fast).lower()}", "--set", f"run.dir={run_dir}"]
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pipeline", "extract", *options], cwd=ROOT, check=True)
    seconds = time.perf_counter() - started
    subprocess.run([sys.executable, "-m", "pipeline", "run", "-q", *options], cwd=ROOT, check=True)
    return run_dir, seconds


def accuracies(run_dir: Path) -> tuple[dict, tuple]:
    """``({(tap, classifier): test accuracy}, key of the best model by CV)`` of a run."""
    results = json.loads((run_dir / "results.json").read_text())
    table = {(row["tap"], row["classifier"]): row["test_accuracy"] for row in results["rows"]}
    best = max(results["rows"], key=lambda row: row["cv_accuracy"])
    return table, (best["tap"], best["classifier"])


def markdown(config: Path, side: int, count: int, runs: dict) -> str:
    (fast, fast_best), fast_seconds = runs[True]
    (full, full_best), full_seconds = runs[False]
    differences = [100 * (fast[key] - full[key]) for key in full]
    lines = [
        f"### Reduced-scale JPEG decoding and accuracy, {date.today().isoformat()}",
        "",
        f"`python benchmarks/fast_decode.py {' '.join(sys.argv[1:])}`: {count} images upscaled to "
        f"{side}x{side} JPEGs, config `{config.name}`, run twice. Extract stage: {fast_seconds:.0f} s with "
        f"fast decoding, {full_seconds:.0f} s without ({full_seconds / fast_seconds:.2f}x).",
        "",
        "| tap | classifier | test accuracy, fast decoding | full decoding | difference (points) |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [f"| {tap} | {classifier} | {100 * fast[tap, classifier]:.1f} % | {100 * full[tap, classifier]:.1f} % | "
              f"{100 * (fast[tap, classifier] - full[tap, classifier]):+.1f} |" for tap, classifier in sorted(full)]
    lines += [
        "",
        f"Largest difference {max(map(abs, differences)):.1f} points, mean {sum(differences) / len(differences):+.2f}. "
        f"Best by CV: {'/'.join(fast_best)} {100 * fast[fast_best]:.1f} % (fast), "
        f"{'/'.join(full_best)} {100 * full[full_best]:.1f} % (full).",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path, help="pipeline config; its data.root receives the large JPEGs")
    parser.add_argument("--images", type=Path, required=True, help="the image folder to copy as large JPEGs")
    parser.add_argument("--side", type=int, default=1536, help="side of the large JPEGs in pixels (default 1536)")
    parser.add_argument("--out", type=Path, help="also append the Markdown to this file")
    args = parser.parse_args(argv)
    count = make_large(args.images, Path(load_config(args.config).data.root), args.side)
    runs = {}
    for fast in (True, False):
        run_dir, seconds = run_pipeline(args.config, fast)
        runs[fast] = accuracies(run_dir), seconds
    publish(markdown(args.config, args.side, count, runs), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
