"""The stage records of the streaming executor (:mod:`uhdfuse.runtime.stream`).

Every stage reads rows from the :class:`RowBuffer` of the stage before it and
writes the rows it produces into its own. ``advance(step)`` computes the next
rows the stage can compute (at most ``step`` of them) and says whether it did;
``first_needed()`` is the first input row it will still read, so the executor can
drop the rows before it. Rows are token rows of one column band, on dim 1 of
(1, rows, columns, channels) tensors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from uhdfuse.nn.bands import BandPlan
from uhdfuse.nn.cache import KVCache
from uhdfuse.nn.ipl import Block
from uhdfuse.nn.layers import replicate_rows, tokenize


class RowBuffer:
    """Rows [start, end) of one stage's output, (B, rows, W, C) with rows on dim 1.

    The rows live in one tensor that is reused for the whole band: dropped rows
    only move an offset, the live rows are moved to the front when a push would
    not fit, and the tensor grows (doubling) only when the live rows outgrow it.
    A fresh tensor per step (``torch.cat``) hands the allocator a different size
    every step, so it cannot reuse its freed blocks and grows the heap instead
    (docs/ipl.md, "Memory model").
    """

    def __init__(self) -> None:
        self.buf: torch.Tensor | None = None
        self.start = 0  # frame row of the first live row
        self.offset = 0  # its index in buf
        self.rows = 0  # live rows

    @property
    def end(self) -> int:
        return self.start + self.rows

    @property
    def nbytes(self) -> int:
        return 0 if self.buf is None else self.buf.nelement() * self.buf.element_size()

    def push(self, x: torch.Tensor) -> None:
        """Append rows x (B, n, W, C) after the live rows."""
        n = x.shape[1]
        if self.buf is None:
            shape = list(x.shape)
            shape[1] = 3 * n
            self.buf = x.new_empty(shape)
        if self.offset + self.rows + n > self.buf.shape[1]:
            self._make_room(n)
        self.buf[:, self.offset + self.rows: self.offset + self.rows + n].copy_(x)
        self.rows += n

    def _make_room(self, n: int) -> None:
        assert self.buf is not None
        live = self.buf[:, self.offset: self.offset + self.rows]
        if self.rows + n > self.buf.shape[1]:
            shape = list(self.buf.shape)
            shape[1] = 2 * (self.rows + n)
            grown = self.buf.new_empty(shape)
            grown[:, : self.rows].copy_(live)
            self.buf = grown
        elif self.rows:
            # source and destination overlap when the live rows are more than the gap
            self.buf[:, : self.rows].copy_(live if self.offset >= self.rows else live.clone())
        self.offset = 0

    def get(self, a: int, b: int) -> torch.Tensor:
        """A view of rows [a, b): valid until the next push."""
        assert self.buf is not None and self.start <= a <= b <= self.end, (a, b, self.start, self.end)
        return self.buf[:, self.offset + a - self.start: self.offset + b - self.start]

    def trim(self, row: int) -> None:
        """Forget rows before ``row``."""
        if self.buf is not None and row > self.start:
            k = min(row, self.end) - self.start
            self.offset += k
            self.start += k
            self.rows -= k


class Stage(Protocol):
    inputs: tuple[RowBuffer, ...]
    outputs: tuple[RowBuffer, ...]

    def advance(self, step: int) -> bool: ...

    def first_needed(self) -> int: ...


class FrameReader:
    """Token statistics of the frames, read in pixel tiles of at most ``tile_pixels``.

    images: (N, H, W, 3) linear: a float32 array on the CPU (each tile is copied to
    ``device``), or a tensor of any float dtype, usually already on ``device`` (tiles
    are then views of it: no copy per tile; tokenize computes in float32).
    """

    def __init__(self, images: np.ndarray | torch.Tensor, patch: int, device: torch.device, tile_pixels: int) -> None:
        self.frames = images if isinstance(images, torch.Tensor) else torch.from_numpy(images)
        self.patch = patch
        self.device = device
        self.tile_pixels = tile_pixels
        # CPU: one buffer reused for every tile (RowBuffer says why reuse)
        self._scratch: torch.Tensor | None = None

    def _pixels(self, r0: int, r1: int, c0: int, c1: int) -> torch.Tensor:
        """Token rows/cols [r0, r1) x [c0, c1) of the frames: (1, N, h*p, w*p, 3), edges replicated."""
        p = self.patch
        H, W = self.frames.shape[1:3]
        a, b = r0 * p, min(r1 * p, H)
        c, e = c0 * p, min(c1 * p, W)
        view = self.frames[:, a:b, c:e]
        if self.device.type == "cpu":  # a contiguous copy, so tokenize's reshapes are views
            if self._scratch is None or self._scratch.numel() < view.numel():
                self._scratch = torch.empty(view.numel(), dtype=view.dtype)
            x = self._scratch[: view.numel()].view(view.shape).copy_(view)[None]
        else:  # a no-op for frames already on the device
            x = view.to(self.device, non_blocking=True)[None]
        x = replicate_rows(x, 0, (r1 - r0) * p - (b - a), dim=2)
        return replicate_rows(x, 0, (c1 - c0) * p - (e - c), dim=3)

    def tokens(self, r0: int, r1: int, c0: int, c1: int) -> torch.Tensor:
        """Token rows/cols [r0, r1) x [c0, c1): (1, r1 - r0, c1 - c0, 4N), in column tiles
        of (nearly) equal width."""
        most = max(1, self.tile_pixels // max(1, (r1 - r0) * self.patch * self.patch))
        width = -(-(c1 - c0) // -(-(c1 - c0) // most))
        tiles = [(c, min(c + width, c1)) for c in range(c0, c1, width)]
        return torch.cat([tokenize(self._pixels(r0, r1, a, b), self.patch) for a, b in tiles], 2)


@dataclass
class ReadStage:
    """The first stage: reads ``step`` token rows of the band's crop per call."""

    reader: FrameReader
    crop: tuple[int, int]
    output: RowBuffer
    total: int
    done: int = 0
    reads: int = 0
    inputs: tuple[RowBuffer, ...] = ()

    @property
    def outputs(self) -> tuple[RowBuffer, ...]:
        return (self.output,)

    def advance(self, step: int) -> bool:
        if self.done >= self.total:
            return False
        end = min(self.total, self.done + step)
        self.output.push(self.reader.tokens(self.done, end, *self.crop))
        self.reads += 1
        self.done = end
        return True

    def first_needed(self) -> int:
        return self.total


@dataclass
class RowStage:
    """A stage with a one-row halo (embed, a block's MLP).

    ``compute(x, top, bottom)`` makes rows [a, b) from input rows [a-1+top, b+1-bottom)
    (``top``/``bottom``: halo rows beyond the frame) and returns a tensor per output.
    """

    compute: Callable[[torch.Tensor, int, int], torch.Tensor | tuple[torch.Tensor, ...]]
    source: RowBuffer
    outputs: tuple[RowBuffer, ...]
    total: int
    done: int = 0

    @property
    def inputs(self) -> tuple[RowBuffer, ...]:
        return (self.source,)

    def advance(self, step: int) -> bool:
        ready = self.total if self.source.end >= self.total else self.source.end - 1
        end = min(ready, self.done + step)
        if end <= self.done:
            return False
        lo, hi = max(self.done - 1, 0), min(end + 1, self.total)
        results = self.compute(self.source.get(lo, hi), lo - (self.done - 1), (end + 1) - hi)
        for output, rows in zip(self.outputs, (results,) if isinstance(results, torch.Tensor) else results):
            output.push(rows)
        self.done = end
        return True

    def first_needed(self) -> int:
        return self.done - 1


@dataclass
class AttentionStage:
    """A block's attention, one window-row per call of :meth:`Block.attend`.

    A step attends as many whole window-rows as exist upstream, but no more than
    ``step`` rows (at least one window-row).
    """

    block: Block
    source: RowBuffer
    extras: RowBuffer
    cache: KVCache
    glob: tuple[torch.Tensor, torch.Tensor]
    output: RowBuffer
    total: int
    window_rows: list[tuple[int, int]] = field(init=False)
    next: int = 0  # index of the next window-row

    def __post_init__(self) -> None:
        self.window_rows = self.block.window_rows(self.total)

    @property
    def inputs(self) -> tuple[RowBuffer, ...]:
        return (self.source, self.extras)

    @property
    def outputs(self) -> tuple[RowBuffer, ...]:
        return (self.output,)

    def advance(self, step: int) -> bool:
        window = self.block.cfg.window
        rows = 0
        while (self.next < len(self.window_rows) and self.window_rows[self.next][1] <= self.source.end
               and (rows == 0 or rows + window <= step)):
            a, b = self.window_rows[self.next]
            self.output.push(self.block.attend(self.source.get(a, b), self.extras.get(a, b), self.cache, self.glob))
            self.next += 1
            rows += b - a
        return rows > 0

    def first_needed(self) -> int:
        return self.window_rows[self.next][0] if self.next < len(self.window_rows) else self.total


@dataclass
class HeadStage:
    """The last stage: maps rows from the last block's rows and the token statistics,
    stitched into the output over the band's columns (:meth:`BandPlan.stitch`)."""

    compute: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    source: RowBuffer
    tokens: RowBuffer
    plan: BandPlan
    band: int
    maps: torch.Tensor  # (Ht, Wt, 2N) float32, CPU
    done: int = 0
    outputs: tuple[RowBuffer, ...] = ()

    @property
    def inputs(self) -> tuple[RowBuffer, ...]:
        return (self.source, self.tokens)

    def advance(self, step: int) -> bool:
        end = min(self.source.end, self.tokens.end, self.done + step)
        if end <= self.done:
            return False
        new = self.compute(self.source.get(self.done, end), self.tokens.get(self.done, end))
        new = new.float().cpu()[0]  # (rows, hi - lo, 2N)
        rows = self.maps[self.done:end]
        left = None
        if self.band:  # band k-1 has written its values over this band's seam zone
            za, zb = self.plan.zone(self.band)
            left = rows[:, za:zb]
        a, b = self.plan.columns(self.band)
        rows[:, a:b] = self.plan.stitch(self.band, new, left)
        self.done = end
        return True

    def first_needed(self) -> int:
        return self.done
