"""The quantized attention cache of IPL: what a slice remembers of the slices above it.

It belongs to the model: what the cache keeps shapes the model's outputs and what
training learns. :mod:`uhdfuse.nn.ipl` uses it for the whole-frame forward,
:mod:`uhdfuse.runtime.stream` for streaming.

One :class:`KVCache` per transformer block. After the block has attended a
window-row (one strip of windows), every window of that row leaves one *summary
entry*: the mean of its keys and values. The cache holds at most ``keep``
entries; when more arrive it keeps the entries with the highest *importance*
(an exposure- and ghost-aware score computed from the input, minus an age
penalty) and pools the others into ``bins`` running means, one per brightness
level of the reference frame, so nothing is dropped without a trace. A pooled
entry attends with a ``log(count)`` bias (proportional attention), so it weighs
as much as the entries it replaced.

Storage, KIVI style (keys per channel, values per token, asymmetric min/max):

- ``bits=16``: keys and values as float16 (the exact reference).
- ``bits=8`` / ``bits=4``: each appended group (one window-row) is quantized once;
  keys get one float16 (offset, step) pair per channel for the group, values one
  pair per entry (across heads); int4 codes are packed two per byte. Entries are never re-quantized, so
  errors do not accumulate down the frame.

The pooled running sums (``bins`` entries) and the importance bookkeeping stay in
float32: they are a few hundred bytes and are counted in :meth:`KVCache.nbytes`.

When autograd is on (training), the cache stores straight-through quantized
float tensors instead of codes: the forward values are identical, and gradients
pass through the rounding.
"""

from __future__ import annotations

import torch

from uhdfuse.config import check_cache_bits

GROUP_SLACK = 12  # key-scale groups (window-rows) kept before unreferenced ones are pruned
SCORE_GRID = 256.0  # scores are rounded to 1/256 so that float noise cannot reorder ties
# Scores are clamped to +-8 first: 8 * 256 = 2048 is float16's last exact integer, so
# a rounded score is stored exactly.
SCORE_LIMIT = 8.0


def quantize(x: torch.Tensor, bits: int, dims: int | tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric min/max quantization of ``x`` with one (offset, step) per slice.

    ``dims`` are the axes reduced to find the range: the token axis gives
    per-channel scales as KIVI uses for keys, the channel axes per-token scales
    for values. Offsets and steps are rounded to float16 (their stored form)
    before the codes are computed, so a round trip is exact to what is stored.
    Returns (codes uint8 in [0, 2**bits - 1], offset, step); the last two float16
    with the reduced axes kept as size 1.
    """
    xf = x.float()
    lo = xf.amin(dim=dims, keepdim=True).half()
    hi = xf.amax(dim=dims, keepdim=True)
    levels = float(2**bits - 1)
    step = ((hi - lo.float()) / levels).half()
    step = torch.where(step > 0, step, torch.ones_like(step))
    codes = torch.round((xf - lo.float()) / step.float()).clamp_(0, levels).to(torch.uint8)
    return codes, lo, step


def dequantize(codes: torch.Tensor, lo: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`quantize` (float32)."""
    return codes.float() * step.float() + lo.float()


def pack4(codes: torch.Tensor) -> torch.Tensor:
    """Pack 4-bit codes (uint8 < 16, even last dim) two per byte: (..., d) -> (..., d/2)."""
    return codes[..., 0::2] | (codes[..., 1::2] << 4)


def unpack4(packed: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`pack4`: (..., d/2) -> (..., d)."""
    lo = packed & 0x0F
    hi = packed >> 4
    return torch.stack([lo, hi], dim=-1).flatten(-2)


def fake_quantize(x: torch.Tensor, bits: int, dims: int | tuple[int, ...]) -> torch.Tensor:
    """The value ``x`` has after a round trip through the cache (straight-through gradient)."""
    if bits == 16:
        q = x.to(torch.float16).float()
    else:
        q = dequantize(*quantize(x, bits, dims))
    return x.float() + (q - x.float()).detach()


class KVCache:
    """Bounded, quantized memory of one block's keys/values from earlier window-rows.

    Shapes: B batch, h heads, d head dim; entries are stored as (B, h, M, d).
    The number of entries is the same for every batch item (each window-row adds
    the same number of windows), so no padding mask is needed for kept entries.
    """

    def __init__(self, bits: int, keep: int, bins: int, decay: float) -> None:
        self.bits = check_cache_bits(bits)
        self.keep = keep
        self.bins = bins
        self.decay = decay
        self.step = 0
        self.train = False
        self.k: torch.Tensor | None = None  # codes, float16 values, or (train) float values
        self.v: torch.Tensor | None = None
        self.k_lo: torch.Tensor | None = None  # (B, h, G, d): one row per live group
        self.k_step: torch.Tensor | None = None
        self.gid: torch.Tensor | None = None  # (B, M) group of each entry
        self.v_lo: torch.Tensor | None = None  # (B, 1, M, 1)
        self.v_step: torch.Tensor | None = None
        self.score: torch.Tensor | None = None  # (B, M) importance at insertion
        self.born: torch.Tensor | None = None  # (B, M) window-row index of insertion
        self.level: torch.Tensor | None = None  # (B, M) brightness bin
        self.pool_k: torch.Tensor | None = None  # (B, h, bins, d) sums of evicted entries
        self.pool_v: torch.Tensor | None = None
        self.pool_n: torch.Tensor | None = None  # (B, bins)
        self.peak_bytes = 0

    # -- reading ---------------------------------------------------------------
    def _values(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Dequantized kept entries: (B, h, M, d) keys and values, float32."""
        assert self.k is not None and self.v is not None
        if self.train or self.bits == 16:
            return self.k.float(), self.v.float()
        k, v = self.k, self.v
        if self.bits == 4:
            k, v = unpack4(k), unpack4(v)
        assert self.k_lo is not None and self.k_step is not None and self.gid is not None
        B, h, M, d = k.shape
        idx = self.gid.long()[:, None, :, None].expand(B, h, M, d)
        k_lo = torch.gather(self.k_lo, 2, idx)
        k_step = torch.gather(self.k_step, 2, idx)
        return dequantize(k, k_lo, k_step), dequantize(v, self.v_lo, self.v_step)

    def context(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None:
        """What a new window-row attends to besides itself: (keys, values, bias) or None.

        keys/values: (B, h, K, d) float32 (kept entries, then pooled means once any
        entry was evicted); bias: (B, K) log-count bias, or None when nothing is pooled.
        """
        if self.k is None:
            return None
        k, v = self._values()
        if self.pool_n is None:
            return k, v, None
        n = self.pool_n.clamp_min(1.0)[:, None, :, None]
        pk = self.pool_k / n
        pv = self.pool_v / n
        bias = torch.cat(
            [torch.zeros(k.shape[0], k.shape[2], device=k.device), torch.log(self.pool_n)], dim=1
        )  # log(0) = -inf: empty bins get no attention
        return torch.cat([k, pk], 2), torch.cat([v, pv], 2), bias

    # -- writing ---------------------------------------------------------------
    def _encode(self, k: torch.Tensor, v: torch.Tensor) -> tuple:
        """A new group (B, h, S, d) in stored form: (keys, values, key scales, value scales),
        the scales (offset, step) pairs, or None where nothing is quantized."""
        if self.train:
            return fake_quantize(k, self.bits, -2), fake_quantize(v, self.bits, (1, 3)), None, None
        if self.bits == 16:
            return k.to(torch.float16), v.to(torch.float16), None, None
        kc, k_lo, k_step = quantize(k, self.bits, -2)  # per channel over the group
        vc, v_lo, v_step = quantize(v, self.bits, (1, 3))  # per token, across heads
        if self.bits == 4:
            kc, vc = pack4(kc), pack4(vc)
        return kc, vc, (k_lo, k_step), (v_lo, v_step)

    def append(self, k: torch.Tensor, v: torch.Tensor, score: torch.Tensor, level: torch.Tensor) -> None:
        """Add one window-row's summaries and apply the keep/pool policy.

        k, v: (B, h, S, d) mean keys/values of the S windows of the row;
        score: (B, S) importance; level: (B, S) reference brightness in [0, 1].
        """
        # the cache keeps its own dtypes (float16 scales, integer codes): CPU autocast
        # cannot promote float16 with bfloat16 in its concatenations
        with torch.autocast(k.device.type, enabled=False):
            self._append(k, v, score, level)

    def _append(self, k: torch.Tensor, v: torch.Tensor, score: torch.Tensor, level: torch.Tensor) -> None:
        B, S = k.shape[0], k.shape[2]
        self.train = self.train or (torch.is_grad_enabled() and (k.requires_grad or v.requires_grad))
        kc, vc, kq, vq = self._encode(k, v)
        dev = k.device
        score = score.float().clamp(-SCORE_LIMIT, SCORE_LIMIT)
        score = (torch.round(score * SCORE_GRID) / SCORE_GRID).half()  # exact in fp16
        born = torch.full((B, S), self.step, device=dev, dtype=torch.int32)
        lvl = (level.float() * self.bins).clamp_(0, self.bins - 1).to(torch.uint8)
        quantized = not self.train and self.bits != 16
        if self.k is None:
            self.k, self.v, self.score, self.born, self.level = kc, vc, score, born, lvl
            if quantized:
                self.k_lo, self.k_step = kq
                self.v_lo, self.v_step = vq
                self.gid = torch.zeros(B, S, dtype=torch.int32, device=dev)
        else:
            if quantized:
                ng = self.k_lo.shape[2]
                self.k_lo = torch.cat([self.k_lo, kq[0]], 2)
                self.k_step = torch.cat([self.k_step, kq[1]], 2)
                self.v_lo = torch.cat([self.v_lo, vq[0]], 2)
                self.v_step = torch.cat([self.v_step, vq[1]], 2)
                self.gid = torch.cat([self.gid, torch.full((B, S), ng, dtype=torch.int32, device=dev)], 1)
            self.k = torch.cat([self.k, kc], 2)
            self.v = torch.cat([self.v, vc], 2)
            self.score = torch.cat([self.score, score], 1)
            self.born = torch.cat([self.born, born], 1)
            self.level = torch.cat([self.level, lvl], 1)
        self.step += 1
        if self.score.shape[1] > self.keep:
            self._evict()
        self.peak_bytes = max(self.peak_bytes, self.nbytes())

    def _evict(self) -> None:
        """Keep the ``keep`` most important entries; pool the rest by brightness bin."""
        age = (self.step - 1 - self.born).float()
        eff = self.score.float() - self.decay * age
        eff = torch.round(eff * SCORE_GRID) / SCORE_GRID
        order = torch.sort(eff, dim=1, descending=True, stable=True).indices
        keep_idx = torch.sort(order[:, : self.keep], dim=1).values  # keep storage in insertion order
        drop_idx = torch.sort(order[:, self.keep :], dim=1).values
        B, h = self.k.shape[0], self.k.shape[1]
        k_all, v_all = self._values()
        d = k_all.shape[-1]
        gd = drop_idx[:, None, :, None].expand(B, h, drop_idx.shape[1], d)
        k_drop = torch.gather(k_all, 2, gd)
        v_drop = torch.gather(v_all, 2, gd)
        bins = torch.gather(self.level, 1, drop_idx).long()  # (B, D)
        if self.pool_n is None:
            self.pool_k = torch.zeros(B, h, self.bins, d, device=k_all.device)
            self.pool_v = torch.zeros_like(self.pool_k)
            self.pool_n = torch.zeros(B, self.bins, device=k_all.device)
        bidx = bins[:, None, :, None].expand(B, h, bins.shape[1], d)
        self.pool_k = self.pool_k.scatter_add(2, bidx, k_drop)
        self.pool_v = self.pool_v.scatter_add(2, bidx, v_drop)
        self.pool_n = self.pool_n.scatter_add(1, bins, torch.ones_like(bins, dtype=self.pool_n.dtype))

        def take(t: torch.Tensor) -> torch.Tensor:
            if t.dim() == 2:
                return torch.gather(t, 1, keep_idx)
            idx = keep_idx[:, None, :, None].expand(t.shape[0], t.shape[1], keep_idx.shape[1], t.shape[3])
            return torch.gather(t, 2, idx)

        self.k, self.v = take(self.k), take(self.v)
        self.score, self.born, self.level = take(self.score), take(self.born), take(self.level)
        if self.gid is not None:
            self.gid = take(self.gid)
            self.v_lo, self.v_step = take(self.v_lo), take(self.v_step)
            # drop key scale groups nobody references any more; only every few rows,
            # since finding them costs a device sync
            if self.k_lo.shape[2] > GROUP_SLACK:
                self._prune_groups()

    def _prune_groups(self) -> None:
        """Remove key-scale groups that no kept entry of any batch item references."""
        used = torch.zeros(self.k_lo.shape[2], dtype=torch.bool, device=self.gid.device)
        used[self.gid.flatten().long()] = True
        remap = torch.cumsum(used.long(), 0) - 1
        self.gid = remap[self.gid.long()].to(torch.int32)
        self.k_lo = self.k_lo[:, :, used]
        self.k_step = self.k_step[:, :, used]

    def nbytes(self) -> int:
        """Bytes the cache holds now (codes, scales, pooled sums and bookkeeping)."""
        total = 0
        for t in (self.k, self.v, self.k_lo, self.k_step, self.v_lo, self.v_step, self.gid,
                  self.score, self.born, self.level, self.pool_k, self.pool_v, self.pool_n):
            if t is not None:
                total += t.nelement() * t.element_size()
        return total

