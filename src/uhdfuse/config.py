"""Typed, frozen settings of a merge. Defaults are defined here and nowhere else."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Engine = Literal["mertens", "ipl"]
AlignModel = Literal["none", "translation", "euclidean", "homography", "auto"]
Response = Literal["srgb", "linear", "debevec", "robertson"]
Device = Literal["auto", "cpu", "cuda", "mps"]
Prefer = Literal["raw", "jpeg"]  # which half of a RAW+JPEG pair is the frame

ENGINES: tuple[str, ...] = ("mertens", "ipl")
ALIGN_MODELS: tuple[str, ...] = ("none", "translation", "euclidean", "homography", "auto")
RESPONSES: tuple[str, ...] = ("srgb", "linear", "debevec", "robertson")
BIT_DEPTHS: tuple[int, ...] = (8, 16, 32)
PREFERENCES: tuple[str, ...] = ("raw", "jpeg")


@dataclass(frozen=True)
class MertensWeights:
    """Exponents of the three Mertens quality measures and the well-exposedness width."""

    contrast: float = 1.0
    saturation: float = 1.0
    exposedness: float = 1.0
    sigma: float = 0.2  # Gaussian width around mid-grey (0.5, display-encoded)


@dataclass(frozen=True)
class AlignConfig:
    """Settings of global registration."""

    model: AlignModel = "auto"
    proxy_size: int = 1024  # long side, in pixels, of the proxy used for the coarse search
    max_residual: float = 0.12  # RMS luma difference above which a registration is rejected
    crop: bool = True  # crop to the area every frame covers


@dataclass(frozen=True)
class MergeConfig:
    """Everything :func:`uhdfuse.merge` needs besides the inputs and the output path."""

    engine: Engine = "ipl"
    hdr: bool = False  # write a linear 32-bit float radiance map instead of a fused image
    # Bits per channel: 8 or 16 for fused output, 32 (float TIFF) for a radiance map;
    # None = the output format's own (16 for TIFF/PNG, 8 for JPEG, 32 with hdr).
    bit_depth: int | None = None
    quality: int = 95  # JPEG quality (1-100); at 90 and above the chroma is kept at full resolution
    reference: int | str | None = None  # index into the exposure-sorted frames, or a file name; None = best middle
    ev: tuple[float, ...] | None = None  # user-stated EVs, in input order
    response: Response = "srgb"  # how display-encoded files are linearised
    align: AlignConfig = AlignConfig()
    mertens: MertensWeights = MertensWeights()
    device: Device = "auto"
    chunk: int | None = None  # IPL slice height in tokens; None = the model's default
    cache_bits: int = 8  # IPL attention-cache precision: 16, 8 or 4
    prefer: Prefer = "raw"  # of a RAW+JPEG pair (same folder and name), the RAW is the frame
    force: bool = False  # overwrite an existing output
    keep_metadata: bool = True
    # Consistency across a shoot (panoramas, timelapses): scale every output to this
    # absolute exposure, log2(t * ISO / N^2), instead of its own reference frame's, so
    # one scene brightness gives one output value in every bracket. None = today's
    # behaviour (each output in its reference frame's exposure).
    exposure_anchor: float | None = None
