"""How many threads uhdfuse's own thread pools use: one runtime setting.

The setting is the process environment's ``UHDFUSE_THREADS``, read when work starts,
never at import. Batch workers get it set to their share of the cores before they
start, together with the variables the numeric libraries obey (OpenMP, OpenBLAS,
MKL: :data:`THREAD_VARIABLES`), so a worker's numpy blocks, OpenCV and torch all use
the same share. Without it, a process uses its cores, up to :data:`MAX_THREADS`; a
cluster's ``OMP_NUM_THREADS=1`` does not make uhdfuse's own pools single-threaded.
"""

from __future__ import annotations

import os

SETTING = "UHDFUSE_THREADS"
THREAD_VARIABLES: tuple[str, ...] = (SETTING, "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
# More threads than this buys nothing for the memory-bound numpy passes uhdfuse runs.
MAX_THREADS = 8


def worker_threads() -> int:
    """Threads for one process's pools: ``UHDFUSE_THREADS`` when set to a positive
    whole number, else the CPU count; at most :data:`MAX_THREADS`, at least 1."""
    given = os.environ.get(SETTING, "").strip()
    count = int(given) if given.isdigit() and int(given) > 0 else (os.cpu_count() or 1)
    return max(1, min(MAX_THREADS, count))
