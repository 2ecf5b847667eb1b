"""Running IPL: the quantized attention cache, the streaming executor, devices, the engine.

``fuse_ipl`` is imported lazily: :mod:`uhdfuse.nn.ipl` imports :mod:`.cache` from here,
and an eager import of the engine (which imports the model) would make that circular.
"""

from __future__ import annotations

from typing import Any

__all__ = ["fuse_ipl"]


def __getattr__(name: str) -> Any:
    if name == "fuse_ipl":
        from .engine import fuse_ipl

        return fuse_ipl
    raise AttributeError(name)
