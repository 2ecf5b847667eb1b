"""Running IPL: the streaming executor, devices and memory, the render, the engine."""

from .engine import FuseStats, fuse_ipl
from .stream import StreamInfo, stream_fuse, stream_maps

__all__ = ["FuseStats", "StreamInfo", "fuse_ipl", "stream_fuse", "stream_maps"]
