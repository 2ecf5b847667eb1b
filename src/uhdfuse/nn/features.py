"""What the IPL network sees of each token: per-frame features and the extras.

The extras are side data every token carries beside its features, computed once
from the input: the cache importance (how badly the reference exposes the token,
and how much the frames disagree there) and the reference's level (the cache's
brightness bin). Attention reads them to summarise a window for the cache; no
layer transforms them.
"""

from __future__ import annotations

import torch

from uhdfuse.nn.layers import STATS, luma, one_hot, srgb_encode

FEATS = 8  # per frame and token features fed to the encoder (see frame_features)
EXTRAS = 2  # side data of every token, beside its features: cache importance, reference level
IMPORTANCE, LEVEL = 0, 1  # channels of the extras
# Frame features on a scale of about one: a token's texture (the spread of its
# sqrt-luma, up to ~0.25 on photographs) times 4, EVs over 4 (+-4 EV spans [-1, 1]).
TEXTURE_GAIN = 4.0
EV_SCALE = 4.0
TEXTURE_FLOOR = 1e-8  # under the texture's square root, whose gradient is infinite at 0
# Importance of a token for the cache: how badly the reference exposes it. Its
# sqrt-luma level within MID_LEVEL +- WELL_EXPOSED counts as well exposed (0); from
# there the importance rises linearly, reaching 1 at black and at clipping
# (EXPOSURE_RAMP = 0.5 - 0.3 more).
MID_LEVEL = 0.5
WELL_EXPOSED = 0.3
EXPOSURE_RAMP = 0.2


def frame_features(tok: torch.Tensor, ev: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoder inputs from token statistics.

    tok: (B, h, w, 4N); ev: (B, N) EV relative to the reference; ref: (B,) long.
    Returns features (B, h, w, N, 8) [sRGB mean (3), sqrt-luma, texture, EV/4, is-ref,
    disagreement with the reference] and extras (B, h, w, 2) [cache importance,
    reference sqrt-luma].
    """
    B, h, w, _ = tok.shape
    N = ev.shape[1]
    st = tok[..., : N * STATS].reshape(B, h, w, N, STATS)
    rgb, s = st[..., :3], st[..., 3]
    disp = srgb_encode(rgb.clamp(0, 1))
    texture = torch.sqrt((luma(rgb) - s * s).clamp_min(0) + TEXTURE_FLOOR) * TEXTURE_GAIN
    is_ref = one_hot(ref, N, tok.dtype)  # (B, N)
    evb = ev.to(tok.dtype)
    # sqrt-luma scaled to the reference exposure (sqrt-luma grows by 2**(ev/2)): equal
    # for all frames where the scene is static and neither frame is clipped or black
    norm = s * torch.exp2(-0.5 * evb)[:, None, None, :]
    s_ref = (norm * is_ref[:, None, None, :]).sum(-1, keepdim=True)
    diff = (norm - s_ref).clamp(-1, 1)
    feats = torch.cat([
        disp, s[..., None], texture[..., None],
        (evb / EV_SCALE)[:, None, None, :, None].expand(B, h, w, N, 1),
        is_ref[:, None, None, :, None].expand(B, h, w, N, 1),
        diff[..., None],
    ], -1)
    ref_level = s_ref[..., 0].clamp(0, 1)
    badly_exposed = ((ref_level - MID_LEVEL).abs() - WELL_EXPOSED).clamp_min(0) / EXPOSURE_RAMP
    importance = badly_exposed + diff.abs().amax(-1)
    return feats, torch.stack([importance, ref_level], -1)


__all__ = ["EXTRAS", "FEATS", "IMPORTANCE", "LEVEL", "frame_features"]
