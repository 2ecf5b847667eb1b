"""How many threads uhdfuse's own thread pools use (one runtime setting), and the
row-block runner its per-pixel passes share.

The setting is the process environment's ``UHDFUSE_THREADS``, read when work starts,
never at import. Batch workers get it set to their share of the cores before they
start, together with the variables the numeric libraries obey (OpenMP, OpenBLAS,
MKL: :data:`THREAD_VARIABLES`), so a worker's numpy blocks, OpenCV and torch all use
the same share. Without it, a process uses its cores, up to :data:`MAX_THREADS`; a
cluster's ``OMP_NUM_THREADS=1`` does not make uhdfuse's own pools single-threaded.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

SETTING = "UHDFUSE_THREADS"
THREAD_VARIABLES: tuple[str, ...] = (SETTING, "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
# More threads than this buys nothing for the memory-bound numpy passes uhdfuse runs.
MAX_THREADS = 8
# Rows per block of per-pixel work: a block's temporaries stay in cache across the
# several passes, and every core of a small machine works (numpy releases the GIL).
# 64 rows of a 4K frame are ~3 MB.
BLOCK_ROWS = 64
# Below this many pixels per call, starting threads costs more than the work
# (e.g. the small crops the training data is made of): run the blocks inline.
MIN_THREADED_PIXELS = 512 * 512


def worker_threads() -> int:
    """Threads for one process's pools: ``UHDFUSE_THREADS`` when set to a positive
    whole number, else the CPU count; at most :data:`MAX_THREADS`, at least 1."""
    given = os.environ.get(SETTING, "").strip()
    count = int(given) if given.isdigit() and int(given) > 0 else (os.cpu_count() or 1)
    return max(1, min(MAX_THREADS, count))


def in_row_blocks(func: Callable[[slice], None], rows: int, row_pixels: int) -> None:
    """Call ``func(block)`` for consecutive row slices covering ``range(rows)``, on
    :func:`~uhdfuse.threads.worker_threads` threads when the work (``rows`` x
    ``row_pixels`` pixels) is large enough to pay."""
    blocks = [slice(start, start + BLOCK_ROWS) for start in range(0, rows, BLOCK_ROWS)]
    threads = worker_threads()
    if len(blocks) == 1 or threads == 1 or rows * row_pixels < MIN_THREADED_PIXELS:
        for block in blocks:
            func(block)
        return
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for _ in pool.map(func, blocks):  # iterating re-raises a block's exception
            pass
