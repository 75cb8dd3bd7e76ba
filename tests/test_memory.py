"""Extraction streams rows to the store: its memory does not grow with the number of images."""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
from PIL import Image

from rss_probe import ENV

ROOT = Path(__file__).resolve().parents[1]

# The peak resident memory of one call, in KiB, each in a fresh process (the kernel's own
# high-water mark of the process's memory, VmHWM; not ru_maxrss, which a child inherits
# from the parent that forked it). A fresh process per call, because in one process the
# allocator's leftovers from one call shift the next call's peak by +-70 MiB whatever the
# number of images. layer1 of ResNet50 at 128x128 is 256 x 32 x 32: grid32 pooling keeps
# all of it, 1 MiB per image, so that holding the codes would stand out.
MEASURE = textwrap.dedent("""\
    import sys
    from features import ImageFolder, Recipe, Runtime, compute_codes, extract_codes, resolve_weights

    api, cache, folder = sys.argv[1:]
    recipe = Recipe(resolve_weights("resnet50", "random"), image_size=128)
    runtime = Runtime(batch_size=10, num_workers=0, progress=False)
    if api == "extract_codes":
        extract_codes(ImageFolder(folder), recipe, taps=["layer1"], poolings=["grid32"], cache_dir=cache,
                      runtime=runtime)
    else:
        compute_codes(ImageFolder(folder), recipe, taps=["layer1"], poolings=["grid32"], runtime=runtime)
    with open("/proc/self/status") as status:
        print(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
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
    def peak_kib(api: str, folder: Path) -> int:
        done = subprocess.run([sys.executable, "-c", MEASURE, api, str(tmp_path / "cache"), str(folder)], cwd=ROOT,
                              env=ENV, capture_output=True, text=True, check=True)
        return int(done.stdout)

    (streamed_few, streamed_many), (held_few, held_many) = [
        [peak_kib(api, folder) for folder in folders] for api in ("extract_codes", "compute_codes")]
    codes_kib = (many - few) * ROW_KIB  # 150 MiB more codes: what holding them all adds
    peaks = f"extract_codes {streamed_few} -> {streamed_many}, compute_codes {held_few} -> {held_many} KiB"
    assert streamed_many - streamed_few < codes_kib / 6, peaks
    # the control shows that the measurement sees codes held in memory
    assert held_many - held_few > codes_kib / 2, peaks
