"""Extraction speed: the whole extract stage against the bare forward and a naive loop.

For each backbone x input size x batch size it measures, in one run and on one machine:

- ``bare``: the tap extractor's forward on a normalised batch already on the device (same
  model, taps, batch, memory format (``--layouts``), precision and threads): the ceiling;
- ``pipeline``: ``python -m pipeline extract`` on JPEG photos on disk, into a fresh HDF5
  cache, as a user runs it (a separate process: its start-up is counted); with
  ``--in-process``, ``features.extract`` in the benchmark's own process (the same stage
  without a second interpreter, whose start-up varies by seconds on a busy machine), and
  then also its forward share (``ForwardClock``): the seconds in the network's forward over
  the stage's from its first batch to its last, both from the same run, so that the
  machine's drift, which moves two runs' rates by 10-30 %, cancels out;
- ``naive``: the tutorial loop: decode each image in the main process, float32, no
  workers, codes gathered in Python lists, saved with numpy;
- ``peer`` (with ``--peer PYTHON``, a python of a venv with thingsvision installed): the
  thingsvision package on the same files, model and taps, one pass per tap and all taps in
  one pass.

Each rate is taken at the margin, ``2N / (time(3N images) - time(N images))``, so that
start-up (imports, model build, opening files) neither hides nor fakes a difference;
start-up is reported on its own as ``time(N) - N / rate``. This machine's speed drifts by
10-30 % over minutes, so each case runs ``--repeats`` rounds in which every contender
(each pipeline variant, the naive loop) runs right after a bare forward of its own (with
the contender's layout and precision; the naive loop's is float32 in the default layout),
and reports medians; pipeline / bare is the median over the rounds of (pipeline / the bare
forward just before it), pipeline / naive the median of the rounds' rate ratios.

The files are JPEGs cut from scikit-learn's two bundled photos, each crop distinct, at a
size that suits the input: 640x480 photos for 224x224 inputs, 96x72 thumbnails for 64x64
(the size of data people run at 64x64). ``--files 4000x3000`` makes camera-sized photos
instead (12 megapixels; upscaled crops with seeded noise, so that decoding costs what a
camera's fine detail costs); ``--decode fast full`` then times the pipeline with and
without reduced-scale JPEG decoding (``features.fast_decode``; ``device``: decoded on the
device, ``features.decode_on_device``), and ``--workers 0 1 2``
compares DataLoader worker counts, all against the same bare and naive rounds.

Then: how long the command line takes to answer when no work is needed (``--help``,
``status``, ``--dry-run``, a run with nothing to do) beside ``python -c pass`` and
``import torch`` in the same run; reading speed of one cached (tap, pooling) dataset for a
split (MB/s); and the fit seconds of each zoo entry on 10,000 x 2,048 synthetic codes.

    python benchmarks/extraction.py                      # everything, prints Markdown
    python benchmarks/extraction.py --backbones resnet50 --sizes 224 --batch-sizes 32
    python benchmarks/extraction.py --sizes 224 --files 4000x3000 --decode fast full   # camera photos
    python benchmarks/extraction.py --device cuda --precision bfloat16 --decode fast device \
        --sizes 224 --batch-sizes 256 --seconds 20 --models         # on a GPU
    python benchmarks/extraction.py --out benchmarks/RESULTS.md   # also appends there

Not a test: minutes on a laptop CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import date
from functools import partial
from pathlib import Path
from unittest import mock

import numpy as np
import torch
import torchvision
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, installed or not

import features.extraction  # noqa: E402
from classifiers import ZOO, make_model  # noqa: E402
from features import (  # noqa: E402
    PRECISIONS,
    Forward,
    check_taps,
    extract,
    get_backbone,
    load_image,
    read_codes,
    resolve_weights,
)
from features.pooling import pool  # noqa: E402
from features.backbones import meta_model  # noqa: E402
from features.forward import HostPixels  # noqa: E402
from features.store import SampleTable, rewrite_store  # noqa: E402
from features.weights import build_tap_extractor, preprocessing  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def photo_size(input_size: int) -> tuple[int, int]:
    """640x480 for ImageNet-sized inputs; 1.5 x the input (4:3) for small ones."""
    return (640, 480) if input_size > 96 else (round(1.5 * input_size), round(1.125 * input_size))


def make_photos(folder: Path, count: int, seed: int, size: tuple[int, int], distinct: int = 24) -> Path:
    """``count`` JPEGs of ``size`` in two class folders, cut from real photos.

    Up to ``distinct`` files are distinct crops; the rest are hard links to them (writing
    hundreds of 12-megapixel files would take longer than the benchmark). A crop blown up
    beyond its own size gets seeded noise back, as a camera's sensor detail.
    """
    from sklearn.datasets import load_sample_images

    photos = [Image.fromarray(image) for image in load_sample_images().images]
    rng = np.random.default_rng(seed)
    for index in range(count):
        (folder / f"class{index % 2}").mkdir(parents=True, exist_ok=True)
        file = folder / f"class{index % 2}" / f"{index:05d}.jpg"
        if index >= distinct:
            os.link(folder / f"class{index % 2}" / f"{index % distinct:05d}.jpg", file)
            continue
        photo = photos[index % 2]
        scale = rng.uniform(0.6, 1.0)
        width, height = int(photo.width * scale), int(photo.height * scale)
        left, top = rng.integers(0, photo.width - width + 1), rng.integers(0, photo.height - height + 1)
        crop = photo.crop((left, top, left + width, top + height)).resize(size, Image.BILINEAR)
        if size[0] > width:
            noisy = np.asarray(crop, np.float32) + rng.normal(0, 4, (size[1], size[0], 3)).astype(np.float32)
            crop = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
        crop.save(file, quality=90)
    return folder


def decode_ms(backbone: str, folder: Path, size: int, count: int = 12) -> dict[str, float]:
    """Milliseconds per file of a worker's work on ``count`` of the JPEGs for ``backbone`` (decode, resize,
    crop to uint8), full and reduced scale, one core (the resize, which reduced-scale decoding must cover,
    differs by backbone)."""
    pixels = HostPixels(preprocessing(resolve_weights(backbone, "random"), size))
    files = sorted(folder.rglob("*.jpg"))[:count]
    times = {}
    for min_side in (None, pixels.resize_size[0]):  # warm-up: the first decode pays for loading the codec
        pixels(load_image(files[0], min_side))
    for decode, min_side in (("full", None), ("fast", pixels.resize_size[0])):
        started = time.perf_counter()
        for file in files:
            pixels(load_image(file, min_side))
        times[decode] = 1000 * (time.perf_counter() - started) / len(files)
    return times


def at_margin(measure, n: int) -> tuple[float, float, float]:
    """``(images/s at the margin, start-up seconds, seconds for 3N)`` from ``measure(count) -> seconds``."""
    once, thrice = measure(n), measure(3 * n)
    rate = 2 * n / (thrice - once)
    return rate, max(once - n / rate, 0.0), thrice


def bare(backbone: str, taps: list[str], size: int, batch: int, n: int, forward: Forward = Forward()
         ) -> tuple[float, float, float]:
    """The network alone on one batch already on the device, normalised: the ceiling of ``forward``'s settings."""
    weights = resolve_weights(backbone, "random")
    extractor = forward.model(build_tap_extractor(weights, taps, size), batch)
    pixels = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    images = forward.inputs(pixels, preprocessing(weights, size))
    synchronize = torch.cuda.synchronize if forward.on_cuda else lambda: None

    def measure(count: int) -> float:
        started = time.perf_counter()
        with forward.running():
            for _ in range(count // batch):
                extractor(images)
            synchronize()
        return time.perf_counter() - started

    with forward.running():
        extractor(images)  # warm-up: first-call allocations, cuDNN's choice of kernels, compilation
    return at_margin(measure, n)


def naive(backbone: str, taps: list[str], size: int, batch: int, n: int, folders: dict, device: str = "cpu"
          ) -> tuple[float, float, float]:
    """The loop of a tutorial, on the same files, model and taps: float32, default memory format."""
    weights = resolve_weights(backbone, "random")
    transform = preprocessing(weights, size)
    layouts = check_taps(backbone, taps, ["avg"], size)

    def measure(count: int) -> float:
        started = time.perf_counter()
        extractor = build_tap_extractor(weights, taps, size).to(device)
        codes = {tap: [] for tap in taps}
        files = sorted(folders[count].rglob("*.jpg"))
        with torch.inference_mode():
            for first in range(0, len(files), batch):
                images = torch.stack([transform(Image.open(file).convert("RGB")) for file in files[first:first + batch]])
                outputs = extractor(images.to(device))
                for tap in taps:
                    pooled = pool(outputs[tap], "avg", layouts[tap])  # on the right axes, as a careful loop would
                    codes[tap] += list(pooled.cpu().numpy())
        with tempfile.TemporaryDirectory() as out:
            for tap in taps:
                np.save(Path(out) / f"{tap}.npy", np.stack(codes[tap]))
        return time.perf_counter() - started

    return at_margin(measure, n)


PEER = """
import sys
from pathlib import Path

import numpy as np
from thingsvision import get_extractor
from thingsvision.utils.data import DataLoader, ImageDataset

root, out, backbone, size, batch, passes, *modules = sys.argv[1:]
extractor = get_extractor(model_name=backbone, source="torchvision", device="cpu", pretrained=False)
transforms = extractor.get_transformations(resize_dim=round(int(size) * 256 / 224), crop_dim=int(size))
dataset = ImageDataset(root=root, out_path=out, backend=extractor.get_backend(), transforms=transforms)
batches = DataLoader(dataset=dataset, batch_size=int(batch), backend=extractor.get_backend())
for group in ([[module] for module in modules] if passes == "per-layer" else [modules]):
    features = extractor.extract_features(batches=batches, module_names=group, flatten_acts=True)
    for module, codes in features.items():
        np.save(Path(out) / f"{module}.npy", codes)
"""


def peer(python: str, passes: str, backbone: str, taps: list[str], size: int, batch: int, n: int, folders: dict,
         scratch: Path) -> tuple[float, float, float]:
    """thingsvision, run by ``python`` (its own venv), on the same files, model and taps.

    Its documented use: its own data loader (decoding in the main process), full
    activations (``flatten_acts``; it does not pool), saved with numpy; ``passes``:
    ``per-layer`` (one ``extract_features`` call, one pass over the images, per tap) or
    ``one-pass`` (all taps in one call, which its recent versions allow).
    """
    names = dict(meta_model(backbone).named_modules())  # thingsvision hooks modules, not graph nodes
    modules = [tap if tap in names else get_backbone(backbone).node(tap) for tap in taps]

    def measure(count: int) -> float:
        out = scratch / f"peer-{count}-{time.perf_counter_ns()}"
        started = time.perf_counter()
        subprocess.run([python, "-c", PEER, str(folders[count]), str(out), backbone, str(size), str(batch), passes,
                        *modules], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - started

    return at_margin(measure, n)


class ForwardClock:
    """When the stage's network runs, from hooks on the tap extractor that ``features.extract``
    builds in this process: the stage's time split, within one run, into the network's
    forward and everything else (waiting for decoded images, moving them, pooling, the
    store), from the end of the first batch's forward (which pays first-call costs, as the
    bare forward's warm-up does) to the end of the last. The machine's speed moves both
    alike, so the share is steady where two rates measured a minute apart are not."""

    def __init__(self):
        self.calls = []  # [start, end, images] of each forward

    @contextlib.contextmanager
    def watching(self):
        def build(*args, **kwargs):
            network = build_tap_extractor(*args, **kwargs)
            network.register_forward_pre_hook(
                lambda _, inputs: self.calls.append([time.perf_counter(), None, len(inputs[0])]))
            network.register_forward_hook(lambda *_: self.calls[-1].__setitem__(1, time.perf_counter()))
            return network

        self.calls = []
        with mock.patch.object(features.extraction, "build_tap_extractor", build):
            yield self

    def reading(self) -> tuple[float, float]:
        """``(forward share, images/s of the forward inside the stage)`` of the last run,
        the first batch left out: the forward's seconds over those from the end of the
        first batch's forward to the end of the last one's."""
        later = self.calls[1:]
        seconds = sum(end - start for start, end, _ in later)
        return seconds / (later[-1][1] - self.calls[0][1]), sum(images for *_, images in later) / seconds


def pipeline(backbone: str, taps: list[str], size: int, batch: int, n: int, folders: dict, workers: int,
             decode: str, forward: Forward, scratch: Path, in_process: bool = False
             ) -> tuple[float, float, float, tuple[float, float] | None]:
    """``python -m pipeline extract`` as a user runs it, into a fresh cache each time; or,
    ``in_process``, ``features.extract`` (what the command runs) in this process, which
    leaves a second interpreter's start-up out of both runs of the margin and, for a float
    network on the CPU (where a forward returns when its work is done), also gives the 3N
    run's ``ForwardClock.reading`` (None otherwise)."""
    settings = dict(weights="random", image_size=size, batch_size=batch, num_workers=workers,
                    fast_decode=decode == "fast", decode_on_device=decode == "device", device=forward.device,
                    precision=forward.precision, channels_last=forward.channels_last, compile=forward.compile)
    clock = ForwardClock()
    clocked = in_process and torch.device(forward.device).type == "cpu" and forward.precision != "int8" \
        and not forward.compile  # a compiled or exported network would trace the clock's hooks

    def measure(count: int) -> float:
        run = scratch / f"run-{count}-{time.perf_counter_ns()}"
        run.mkdir(parents=True)
        if in_process:
            with clock.watching() if clocked else contextlib.nullcontext():
                started = time.perf_counter()
                extract(folders[count], backbone, taps, cache_dir=run / "cache", progress=False, **settings).close()
                return time.perf_counter() - started
        config = run / "config.toml"
        config.write_text(textwrap.dedent(f"""\
            [data]
            root = "{folders[count]}"
            [features]
            backbones = ["{backbone}"]
            cache_dir = "cache"
            """) + "".join(f"{key} = {json.dumps(value)}\n" for key, value in settings.items()) + textwrap.dedent(f"""\
            [features.taps]
            {backbone} = {json.dumps(taps)}
            [run]
            dir = "run"
            """))
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pipeline", "extract", "-q", "-c", str(config)], cwd=ROOT, check=True)
        return time.perf_counter() - started

    return (*at_margin(measure, n), clock.reading() if clocked else None)  # the last run's: 3N images


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
                rate, *_ = bare(backbone, taps, size, batch, 2 * batch)  # a first estimate, to size N
                # N: the 2N images of the margin take about --seconds of bare forward
                n = args.n or batch * max(2, round(args.seconds * rate / 2 / batch))
                files = args.files or photo_size(size)
                folders = {count: folder(count, files) for count in (n, 3 * n)}
                variants = [(decode, workers, layout) for decode in args.decode for workers in args.workers
                            for layout in args.layouts]
                forwards = {layout: Forward(args.device, args.precision, layout == "channels_last", args.compile)
                            for layout in args.layouts}
                plain = Forward(args.device, channels_last=False)  # the tutorial's model: float32, default layout
                contenders = {  # name: (the forward whose bare run comes first, the contender)
                    **{variant: (forwards[variant[2]], partial(pipeline, backbone, taps, size, batch, n, folders,
                                                               variant[1], variant[0], forwards[variant[2]], scratch,
                                                               args.in_process))
                       for variant in variants},
                    "naive": (plain, partial(naive, backbone, taps, size, batch, n, folders, args.device)),
                    **{f"peer {passes}": (plain, partial(peer, args.peer, passes, backbone, taps, size, batch, n,
                                                         folders, scratch))
                       for passes in (("per-layer", "one-pass") if args.peer else ())},
                }
                rounds = []
                for _ in range(args.repeats):
                    # each contender right after its own bare forward: the machine drifts over minutes
                    measured = {name: (bare(backbone, taps, size, batch, n, forward), measure())
                                for name, (forward, measure) in contenders.items()}
                    rounds.append(measured)
                    print(f"{backbone} {size}px batch {batch} N {n}: " + ", ".join(
                        f"{name} {rate:.1f} images/s (bare {ceiling:.1f})"
                        for name, ((ceiling, *_), (rate, *_)) in measured.items()), file=sys.stderr)
                median = lambda values: float(np.median(values))  # noqa: E731
                of_bare = lambda r, name: r[name][1][0] / r[name][0][0]  # noqa: E731
                rate_of = lambda r, name: r[name][1][0]  # noqa: E731
                decoding = decode_ms(backbone, folders[n], size)
                rows += [{
                    "backbone": backbone, "size": size, "batch": batch, "taps": len(taps), "n": n,
                    "files": "x".join(map(str, files)), "decode": decode, "workers": workers, "layout": layout,
                    "decode ms": decoding,
                    "bare": median([r[variant][0][0] for r in rounds]),
                    "pipeline": median([rate_of(r, variant) for r in rounds]),
                    "naive": median([rate_of(r, "naive") for r in rounds]),
                    "start-up": median([r[variant][1][1] for r in rounds]),
                    "pipeline / bare": median([of_bare(r, variant) for r in rounds]),
                    "pipeline / naive": median([rate_of(r, variant) / rate_of(r, "naive") for r in rounds]),
                    "clock": None if rounds[0][variant][1][3] is None else {  # in-process on the CPU only
                        "share": [r[variant][1][3][0] for r in rounds],
                        "forward / bare": [r[variant][1][3][1] / r[variant][0][0] for r in rounds]},
                    "peers": {name: (median([rate_of(r, name) for r in rounds]),
                                     median([rate_of(r, variant) / rate_of(r, name) for r in rounds]),
                                     median([r[variant][1][2] for r in rounds]),
                                     median([r[name][1][2] for r in rounds]),
                                     median([r[name][1][2] / r[variant][1][2] for r in rounds]))
                              for name in contenders if str(name).startswith("peer")},
                } for variant in variants for decode, workers, layout in [variant]]
    return rows


ANSWERS = {
    "python -c pass": ["-c", "pass"],
    "import torch": ["-c", "import torch"],
    "import torch, torchvision": ["-c", "import torch, torchvision"],
    "pipeline --help": ["-m", "pipeline", "--help"],
    "pipeline status": ["-m", "pipeline", "status", "-c", "{config}"],
    "pipeline run --dry-run": ["-m", "pipeline", "run", "-c", "{config}", "--dry-run"],
    "pipeline run, nothing to do": ["-m", "pipeline", "run", "-c", "{config}"],
}
"""Commands whose answer needs no work, and the interpreter's floor beside them."""


def answer_seconds(scratch: Path, repeats: int) -> dict[str, float]:
    """Median wall seconds of each of ``ANSWERS``, in interleaved rounds, on a tiny run that is
    up to date (made first: random weights, 12 images, one classifier)."""
    images = make_photos(scratch / "answers", 12, seed=3, size=(48, 40))
    config = scratch / "answers.toml"
    config.write_text(textwrap.dedent(f"""\
        [data]
        root = "{images}"
        test_size = 0.5
        [features]
        backbones = ["resnet50"]
        weights = "random"
        image_size = 32
        num_workers = 0
        cache_dir = "{scratch / 'answers-cache'}"
        [features.taps]
        resnet50 = ["pool"]
        [classifiers]
        models = ["ridge"]
        cv_folds = 2
        [run]
        dir = "{scratch / 'answers-run'}"
        """))
    subprocess.run([sys.executable, "-m", "pipeline", "run", "-q", "-c", str(config)], check=True,
                   capture_output=True)
    seconds = {name: [] for name in ANSWERS}
    for _ in range(repeats):
        for name, argv in ANSWERS.items():
            started = time.perf_counter()
            subprocess.run([sys.executable, *[arg.format(config=config) for arg in argv]], check=True,
                           capture_output=True)
            seconds[name].append(time.perf_counter() - started)
    return {name: float(np.median(values)) for name, values in seconds.items()}


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


def markdown(extraction: list[dict], answers: dict, reading: dict | None, fits: list[dict], args) -> str:
    lines = [
        f"### Extraction speed, {date.today().isoformat()}",
        "",
        f"Machine: {os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), "
        f"{'GPU ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU'}; Python "
        f"{platform.python_version()}, torch {torch.__version__}, torchvision {torchvision.__version__}, "
        f"{torch.get_num_threads()} torch threads. Command: `python benchmarks/extraction.py "
        f"{' '.join(sys.argv[1:])}`. JPEG files; random weights (speed does not depend on "
        f"their values); the backbone's default taps.",
        "",
    ]
    if extraction:
        lines += [
            f"Images/s at the margin (N and 3N images), medians of {args.repeats} rounds; device {args.device}, "
            f"precision {args.precision}{', compiled' if args.compile else ''} (the naive loop: float32, default "
            "layout). Bare: the pipeline's network (same layout, precision, batch, threads) on a batch already on "
            "the device, run just before the pipeline in each round; pipeline / bare: median of the per-round "
            "ratios; pipeline / naive: median of per-round rate ratios; start-up (command to first batch, "
            "imports included) in seconds:",
            "",
            "| backbone | input | files | decode | workers | layout | batch | taps | N | bare forward | pipeline | "
            "pipeline / bare | start-up s | naive | pipeline / naive |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        lines += [
            f"| {r['backbone']} | {r['size']} | {r['files']} | {r['decode']} | {r['workers']} | {r['layout']} | "
            f"{r['batch']} | "
            f"{r['taps']} | {r['n']} | {r['bare']:.1f} | {r['pipeline']:.1f} | {100 * r['pipeline / bare']:.0f} % | "
            f"{r['start-up']:.1f} | {r['naive']:.1f} | {r['pipeline / naive']:.2f}x |"
            for r in extraction
        ]
        clocked = [r for r in extraction if r["clock"]]
        if clocked:
            lines += ["", "Inside the stage (`--in-process`, the 3N run, each round): the forward share is the "
                      "seconds in the network's forward over those from the end of the first batch's forward "
                      "to the end of the last one's (the first batch, with its first-call costs, left out): "
                      "what the stage would reach of a forward running at the same speed; measured within one "
                      "run, the machine's drift moves both alike. The forward inside the stage / bare: its "
                      "images/s against the bare forward of the round (decoding workers sharing the cores show "
                      "here, as does the drift between the two runs):",
                      "", "| backbone | input | workers | forward share, median | rounds | forward inside the "
                      "stage / bare, median | rounds |", "| --- | --- | --- | --- | --- | --- | --- |"]
            percent = lambda values: " / ".join(f"{100 * value:.0f}" for value in values) + " %"  # noqa: E731
            lines += [f"| {r['backbone']} | {r['size']} | {r['workers']} | "
                      f"{100 * np.median(r['clock']['share']):.1f} % | {percent(r['clock']['share'])} | "
                      f"{100 * np.median(r['clock']['forward / bare']):.0f} % | {percent(r['clock']['forward / bare'])} |"
                      for r in clocked]
        peers = [(r, name, *numbers) for r in extraction for name, numbers in r["peers"].items()]
        if peers:
            lines += ["", "Against thingsvision (`--peer`, its own venv), same files, model, input size, batch and "
                      "taps, measured in the same rounds; end to end = seconds for 3N images, start-up included:",
                      "", "| backbone | input | taps | decode | workers | peer | peer images/s | pipeline / peer at "
                      "the margin | 3N images: pipeline s | peer s | peer s / pipeline s |",
                      "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
            lines += [f"| {r['backbone']} | {r['size']} | {r['taps']} | {r['decode']} | {r['workers']} | {name} | "
                      f"{rate:.1f} | {ratio:.2f}x | {ours:.1f} | {theirs:.1f} | {end_to_end:.2f}x |"
                      for r, name, rate, ratio, ours, theirs, end_to_end in peers]
        lines += ["", *dict.fromkeys(
            f"A worker's work on one {r['files']} JPEG for a {r['size']}x{r['size']} {r['backbone']} input (decode, "
            f"resize, crop to uint8), one core: "
            f"{r['decode ms']['full']:.1f} ms at full scale, {r['decode ms']['fast']:.1f} ms at reduced scale "
            f"(`fast_decode`)." for r in extraction), ""]
    if answers:
        lines += [f"Answers that need no work (wall seconds of a fresh process, medians of {args.answer_repeats} "
                  f"interleaved rounds; `status` and `run` on a tiny run that is up to date):", "",
                  "| " + " | ".join(answers) + " |", "|" + " --- |" * len(answers),
                  "| " + " | ".join(f"{value:.2f}" for value in answers.values()) + " |", ""]
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


def publish(text: str, out: Path | None) -> None:
    """Print the Markdown, and append it to ``out`` (``benchmarks/RESULTS.md``) when given."""
    print(text)
    if out:
        with open(out, "a") as file:
            file.write("\n" + text)


def _workers(text: str) -> int | str:
    return text if text == "auto" else int(text)


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = map(int, text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT, e.g. 4000x3000") from None
    return width, height


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=["vgg16", "resnet50"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[64, 224])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[16, 32])
    parser.add_argument("--taps", nargs="+", help="default: each backbone's default taps")
    parser.add_argument("--n", type=int, help="N images (default: what the bare forward does in --seconds / 2)")
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="bare-forward seconds of the 2N-image margin (default 20): longer is steadier")
    parser.add_argument("--files", type=_size, help="size of the JPEG files, WxH (default: suits the input)")
    parser.add_argument("--decode", nargs="+", choices=["fast", "full", "device"], default=["fast"],
                        help="the pipeline's JPEG decoding: fast_decode on, off, or on the device "
                             "(decode_on_device); several to compare (default fast)")
    parser.add_argument("--workers", nargs="+", type=_workers, default=["auto"],
                        help="the pipeline's num_workers (a number or auto); several to compare (default auto)")
    parser.add_argument("--layouts", nargs="+", choices=["channels_last", "contiguous"], default=["channels_last"],
                        help="memory format of the pipeline and its bare forward; both to compare (default channels_last)")
    parser.add_argument("--device", default="cpu", help="where the networks run: cpu, cuda (default cpu)")
    parser.add_argument("--precision", choices=PRECISIONS, default="float32",
                        help="the pipeline's and its bare forward's precision (the naive loop stays float32)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the pipeline's and its bare network")
    parser.add_argument("--in-process", action="store_true",
                        help="run the pipeline as features.extract in this process, not as the command: no "
                             "interpreter start-up in the margin (steadier on a machine whose speed drifts)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds per case; medians are reported (default 3)")
    parser.add_argument("--models", nargs="*", default=[name for name in ZOO if not name.endswith("head")],
                        help="zoo entries to time on 10,000 x 2,048 codes (none: skip)")
    parser.add_argument("--no-extraction", action="store_true", help="only answers, reading and fit times")
    parser.add_argument("--answer-repeats", type=int, default=5,
                        help="rounds timing the command line's answers (0: skip them; default 5)")
    parser.add_argument("--read-rows", type=int, default=20_000,
                        help="rows of the store whose reading is timed (default 20,000 x 2,048)")
    parser.add_argument("--peer", metavar="PYTHON",
                        help="a python with thingsvision installed (its own venv): also time it on the same files")
    parser.add_argument("--out", type=Path, help="also append the Markdown to this file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cnncodes-bench-") as scratch:
        extraction = [] if args.no_extraction else extraction_rows(args, Path(scratch))
        answers = answer_seconds(Path(scratch), args.answer_repeats) if args.answer_repeats else {}
        reading = reading_rate(Path(scratch), args.read_rows)
    fits = fit_seconds(args.models) if args.models else []
    publish(markdown(extraction, answers, reading, fits, args), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
