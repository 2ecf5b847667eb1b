"""Column bands: how a wide frame is cut for the token network and stitched back.

Frames wider than ``IPLConfig.band`` token columns are cut into overlapping
column *bands*; each runs through the token network on its own (with its own
caches), which keeps streaming memory independent of the frame width. Band k >= 1
meets band k-1 in a *seam zone* of ``2 * window`` columns, ``margin`` columns
inside band k's crop: far enough from both crops' edges that neither edge can
reach it (the margin covers the network's column reach). There the two bands'
maps are cross-faded, so no seam shows.

:class:`BandPlan` is the one description of that geometry, and :meth:`BandPlan.stitch`
the one seam stitch: the whole-frame forward (:meth:`uhdfuse.nn.ipl.IPL.maps`) and
the streaming executor (:mod:`uhdfuse.runtime.stream`) both write their maps with
it, so streaming equals the whole-frame computation by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class BandPlan:
    """The bands over ``width`` token columns.

    crops: token-column ranges [lo, hi) of the bands, each ``band`` wide (the last
    may be narrower), starting on the window grid; margin: columns between a crop's
    left edge and its seam zone; window: the attention window (the seam zone is two).
    """

    width: int
    crops: tuple[tuple[int, int], ...]
    margin: int
    window: int

    @classmethod
    def over(cls, width: int, band: int, margin: int, window: int) -> BandPlan:
        """Bands of ``band`` columns over ``width``; consecutive crops overlap by
        2 * (margin + window), so each band's seam zone lies inside its neighbour."""
        step = band - 2 * (margin + window)
        crops, lo = [], 0
        while True:
            hi = min(lo + band, width)
            crops.append((lo, hi))
            if hi >= width:
                return cls(width, tuple(crops), margin, window)
            lo += step

    @property
    def seam(self) -> int:
        """Columns of a seam zone."""
        return 2 * self.window

    def zone(self, k: int) -> tuple[int, int]:
        """Frame columns [a, b) of the seam zone where band k (>= 1) meets band k-1."""
        start = self.crops[k][0] + self.margin
        return start, start + self.seam

    def columns(self, k: int) -> tuple[int, int]:
        """Frame columns [a, b) band k writes: from its own seam zone (or the frame's left
        edge) to the end of the next band's seam zone (or the frame's right edge).

        The next band's zone holds band k's values until band k+1 cross-fades it.
        """
        a = 0 if k == 0 else self.zone(k)[0]
        b = self.width if k + 1 == len(self.crops) else self.zone(k + 1)[1]
        return a, b

    def stitch(self, k: int, band: torch.Tensor, left: torch.Tensor | None) -> torch.Tensor:
        """Band k's maps over :meth:`columns`, its seam zone cross-faded with band k-1's.

        band: (..., hi - lo, C) band k's maps over its crop (columns on dim -2);
        left: (..., 2 * window, C) band k-1's maps over band k's seam zone (None for k = 0).
        Returns (..., b - a, C).
        """
        lo = self.crops[k][0]
        a, b = self.columns(k)
        own = band[..., a - lo: b - lo, :]
        if left is None:
            return own
        n = self.seam
        ramp = ((torch.arange(n, device=own.device, dtype=own.dtype) + 0.5) / n)[:, None]  # 0 -> 1, (2R, 1)
        return torch.cat([torch.lerp(left, own[..., :n, :], ramp), own[..., n:, :]], -2)
