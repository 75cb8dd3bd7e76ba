"""Extractions in processes of their own, for the crash-safety test (which kills them).

    python tests/extraction_server.py IMAGE_FOLDER CACHE_DIR

For each line on standard input it forks a process that runs one extraction, prints
that process's pid, waits for it (killed or not) and prints its exit status. Forking
from this process, which imports torch once but never runs it, makes each extraction
cheap to start and fork-safe (no thread exists at the fork).
"""

import os
import sys
import traceback

import torch

from features import ImageFolder, Recipe, Runtime, extract_codes, resolve_weights

SETTINGS = {
    "taps": ["features.3.cat", "classifier.0"],
    "poolings": ["avg", "max"],
    "runtime": Runtime(batch_size=3, progress=False),
}


def extract(root, cache_dir):
    """The extraction every process runs (the test runs it too, uninterrupted, for reference).

    One thread, so that the numbers do not depend on how busy the machine is.
    """
    torch.set_num_threads(1)
    return extract_codes(ImageFolder(root), Recipe(resolve_weights("squeezenet1_1", "random"), image_size=32),
                         cache_dir=cache_dir, **SETTINGS)


def serve(root, cache_dir):
    for _ in sys.stdin:
        pid = os.fork()
        if pid == 0:
            try:
                extract(root, cache_dir)
            except BaseException:
                traceback.print_exc()
                os._exit(1)
            os._exit(0)
        print(pid, flush=True)
        print(os.waitpid(pid, 0)[1], flush=True)


if __name__ == "__main__":
    serve(*sys.argv[1:3])
