"""Source text of a resident-memory probe, for tests that measure memory in a fresh process.

``rise_kib(work)`` runs ``work()`` and returns how far resident memory rose above where it
was before, in KiB, sampled every 2 ms by a thread. Run the script with
``MALLOC_MMAP_THRESHOLD_=65536`` in the environment (``ENV``): glibc keeps freed blocks and
raises its own mapping threshold as it goes, so resident memory wanders by tens of MiB; a
fixed threshold maps every block above 64 KiB and gives it back when freed, and resident
memory follows what is really held.
"""

import os

PROBE = '''
import os, threading, time

def resident_kib():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024

def rise_kib(work):
    peak, finished = [0], threading.Event()

    def watch():
        while not finished.is_set():
            peak[0] = max(peak[0], resident_kib())
            time.sleep(0.002)

    before = resident_kib()
    watcher = threading.Thread(target=watch)
    watcher.start()
    result = work()
    finished.set()
    watcher.join()
    del result
    return peak[0] - before
'''

ENV = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
