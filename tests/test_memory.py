"""Extraction streams rows to the store: its memory does not grow with the number of images."""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
from PIL import Image

from rss_probe import ENV, PROBE

ROOT = Path(__file__).resolve().parents[1]

# How far resident memory rises above where it was before each call, in KiB, sampled
# every 2 ms, in a fresh process. layer1 of ResNet50 at 128x128 is 256 x 32 x 32: grid32
# pooling keeps all of it, 1 MiB per image, so that holding the codes would stand out from
# the forward's own ups and downs (+-40 MiB).
MEASURE = PROBE + textwrap.dedent("""\
    import sys
    from features import ImageFolder, compute_codes, extract_codes, resolve_weights

    cache, *folders = sys.argv[1:]
    weights = resolve_weights("resnet50", "random")
    options = dict(image_size=128, batch_size=10, num_workers=0, progress=False)
    for folder in folders:
        print("extract_codes", rise_kib(lambda: extract_codes(ImageFolder(folder), weights, ["layer1"], ["grid32"],
                                                              cache_dir=cache, **options)))
    for folder in folders:  # the control: compute_codes holds every code in memory, by design
        print("compute_codes", rise_kib(lambda: compute_codes(ImageFolder(folder), weights, ["layer1"], ["grid32"],
                                                              **options)))
""")
ROW_KIB = 256 * 32 * 32 * 4 / 1024


def _folder(root: Path, count: int) -> Path:
    rng = np.random.default_rng(count)
    for index in range(count):
        (root / f"class{index % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)).save(root / f"class{index % 2}" / f"{index}.png")
    return root


def test_extraction_memory_does_not_grow_with_the_number_of_images(tmp_path):
    few, many = 20, 170
    folders = [_folder(tmp_path / f"images{count}", count) for count in (few, many)]
    done = subprocess.run([sys.executable, "-c", MEASURE, str(tmp_path / "cache"), *map(str, folders)], cwd=ROOT,
                          env=ENV, capture_output=True, text=True, check=True)
    (_, streamed_few), (_, streamed_many), (_, held_few), (_, held_many) = [
        (api, int(kib)) for api, kib in map(str.split, done.stdout.splitlines())]
    codes_kib = (many - few) * ROW_KIB  # 150 MiB more codes: what holding them all adds
    assert streamed_many - streamed_few < codes_kib / 6, done.stdout
    # the control shows that the measurement sees codes held in memory
    assert held_many - held_few > codes_kib / 2, done.stdout
