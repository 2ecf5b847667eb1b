"""Device choice, compute dtype, and peak-memory measurement for the model stage.

- ``auto`` picks CUDA, then Apple MPS, then the CPU.
- CUDA computes the token network in bfloat16 (float16 where bf16 is missing) and
  its attention with ``F.scaled_dot_product_attention`` (FlashAttention /
  memory-efficient kernels); the CPU stays float32 (bf16 was not faster on the
  2-core reference machine, see docs/ipl.md). Full-resolution arithmetic is
  float32 everywhere.
- :class:`PeakMemory` measures the stage's high-water mark: on CUDA
  ``torch.cuda.max_memory_allocated`` minus what was allocated before; on the
  CPU the process's resident-set high-water mark (``VmHWM``), reset at the start
  through ``/proc/self/clear_refs`` and read back at the end, minus the resident
  set at the start (after ``malloc_trim`` returned freed heap pages to the OS, so
  memory a previous run freed cannot hide this run's growth). Everything the stage touches counts (weights, buffers,
  temporaries, allocator slack); the input and output arrays, allocated and
  touched before the stage starts, do not.
"""

from __future__ import annotations

import ctypes
import re
from pathlib import Path

import torch

from uhdfuse.config import Device, check_device
from uhdfuse.errors import UsageError, param


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def select_device(name: Device | str) -> torch.device:
    """The torch.device for a :class:`~uhdfuse.config.Device` (or its name): inference
    and training both choose here. UsageError when it is unknown or absent."""
    choice = check_device(name)
    if choice is Device.AUTO:
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if choice is Device.CUDA and not torch.cuda.is_available():
        raise UsageError(f"{param('device', 'cuda')} requested but no CUDA GPU is available to torch")
    if choice is Device.MPS and not _mps_available():
        raise UsageError(f"{param('device', 'mps')} requested but Apple MPS is not available")
    return torch.device(choice.value)


def compute_dtype(device: torch.device) -> torch.dtype:
    """The token network's compute dtype on ``device``."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


def _status_kib(field: str) -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    m = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(m.group(1)) if m else None


def trim_heap() -> None:
    """Give freed heap memory back to the OS (glibc), so it cannot hide the stage's growth."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakMemory:
    """Context manager: ``.bytes`` is the peak extra memory used inside the block (or None)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.bytes: int | None = None
        self.method = "unavailable"

    def __enter__(self) -> PeakMemory:  # noqa: PYI034 (Self needs Python 3.11)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            self.method = "cuda max_memory_allocated"
        else:
            self._base = None
            trim_heap()
            try:
                Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
                self._base = _status_kib("VmRSS")
                self.method = "VmHWM (reset via /proc/self/clear_refs) - VmRSS at start"
            except OSError:
                pass
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.bytes = int(torch.cuda.max_memory_allocated(self.device) - self._base)
        elif self._base is not None:
            hwm = _status_kib("VmHWM")
            if hwm is not None:
                self.bytes = max(0, hwm - self._base) * 1024
