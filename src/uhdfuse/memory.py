"""Handing the pages of a large array back to the operating system before it is freed.

A fusion holds a few arrays of a frame's size each (24 MP: 288 MB per float32 frame)
and is done with them one by one: a decoded frame once it is warped, a display frame
once its pyramid is blended. Python frees an array only when its last reference
goes, which for one frame of an (N, H, W, 3) stack is never before the whole stack.
:func:`release` returns the pages at once, so peak memory follows what is still needed.
"""

from __future__ import annotations

import ctypes
import mmap
import sys

import numpy as np

# Below this, a release saves less than the system call costs.
MIN_RELEASE_BYTES = 1 << 20


def _madvise():  # noqa: ANN202 - a ctypes function, or None where there is none
    if not sys.platform.startswith("linux") or not hasattr(mmap, "MADV_DONTNEED"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    function = libc.madvise
    function.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    function.restype = ctypes.c_int
    return function


_MADVISE = _madvise()


def release(array: np.ndarray) -> None:
    """Give back the whole pages inside ``array``'s memory; its values read as 0 afterwards.

    For arrays (or C-contiguous views) their owner will not read again. Linux's
    ``madvise(MADV_DONTNEED)`` on anonymous memory; elsewhere, or for small or
    non-contiguous arrays, nothing happens. The array stays valid memory either way:
    a later read sees zeros (or the old values), never a fault.
    """
    if _MADVISE is None or not array.flags.c_contiguous or array.nbytes < MIN_RELEASE_BYTES:
        return
    page = mmap.PAGESIZE
    start = -(-array.ctypes.data // page) * page
    end = (array.ctypes.data + array.nbytes) // page * page
    if end > start:
        _MADVISE(start, end - start, mmap.MADV_DONTNEED)


__all__ = ["MIN_RELEASE_BYTES", "release"]
