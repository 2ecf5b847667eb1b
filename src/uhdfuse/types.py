"""The contracts between the stages of the flow.

files -> :class:`Frame` -> :class:`Bracket` -> :class:`AlignedBracket`
-> engine -> :class:`FuseResult`

Images are ``numpy.float32`` arrays shaped ``(H, W, 3)`` (RGB), upright (EXIF
orientation already applied). *Linear* images are proportional to scene light,
scaled so that 1.0 is the clipping level of the file they came from. *Display*
images are sRGB-encoded values in [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

EvSource = Literal["exif", "pixels", "user", "virtual"]
SourceKind = Literal["raw", "display"]


@dataclass(frozen=True)
class ExposureInfo:
    """Exposure settings of one capture, as recorded by the camera (None when absent)."""

    exposure_time: float | None = None  # seconds
    f_number: float | None = None
    iso: float | None = None
    bias_ev: float | None = None  # exposure compensation, EV

    def is_usable(self) -> bool:
        """True when the exposure time is a positive finite number (the minimum for an EV)."""
        t = self.exposure_time
        return t is not None and math.isfinite(t) and t > 0

    def log2_exposure(self) -> float | None:
        """log2 of the light reaching the sensor, up to a constant shared by a bracket.

        ``t * ISO / N**2``; a missing or nonsense f-number or ISO counts as constant,
        since brackets almost always vary the shutter time alone.
        """
        if not self.is_usable():
            return None
        value = math.log2(self.exposure_time)  # type: ignore[arg-type]
        if self.f_number is not None and math.isfinite(self.f_number) and self.f_number > 0:
            value -= 2.0 * math.log2(self.f_number)
        if self.iso is not None and math.isfinite(self.iso) and self.iso > 0:
            value += math.log2(self.iso)
        return value


@dataclass(frozen=True)
class CameraInfo:
    """What identifies the capture device and moment (for reports and grouping)."""

    make: str | None = None
    model: str | None = None
    lens: str | None = None
    focal_length: float | None = None
    datetime: str | None = None  # EXIF DateTimeOriginal, "YYYY:MM:DD HH:MM:SS"
    orientation: int = 1  # EXIF orientation of the file (already applied to the pixels)


@dataclass(frozen=True, eq=False)
class Frame:
    """One exposure, decoded to linear light."""

    path: Path
    image: np.ndarray  # (H, W, 3) float32, linear, 1.0 = clipping level
    source: SourceKind  # "raw": sensor data; "display": an encoded JPEG/PNG/TIFF
    bit_depth: int  # 8, 16 or 32 (float) for display files; sensor bits for RAW
    exposure: ExposureInfo = field(default_factory=ExposureInfo)
    camera: CameraInfo = field(default_factory=CameraInfo)
    notes: tuple[str, ...] = ()  # what the reader tolerated (a missing JPEG end marker, ...)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return int(self.image.shape[1]), int(self.image.shape[0])


@dataclass(frozen=True, eq=False)
class Bracket:
    """Frames of one scene, sorted from darkest to brightest, with relative exposures."""

    frames: tuple[Frame, ...]
    ev: tuple[float, ...]  # log2(exposure / reference exposure); ev[reference] == 0
    reference: int
    ev_source: EvSource
    warnings: tuple[str, ...] = ()
    # A virtual bracket (uhdfuse.virtual: frames made from one capture): each frame's
    # EV relative to that capture; None for frames that are captures of their own.
    virtual_ev: tuple[float, ...] | None = None

    def to_json(self) -> dict:
        """A JSON-ready dict: each frame's file, EV and exposure, the reference, its camera."""
        cam = self.frames[self.reference].camera
        frames = [
            {
                "file": str(f.path),
                "ev": round(e, 3),
                "reference": i == self.reference,
                "exposure_time": f.exposure.exposure_time,
                "f_number": f.exposure.f_number,
                "iso": f.exposure.iso,
                "bias_ev": f.exposure.bias_ev,
                "kind": f.source,
                "bit_depth": f.bit_depth,
                "size": list(f.size),
            }
            for i, (f, e) in enumerate(zip(self.frames, self.ev))
        ]
        return {
            "frames": frames,
            "ev_source": self.ev_source,
            "virtual_ev": list(self.virtual_ev) if self.virtual_ev is not None else None,
            "reference": self.reference,
            "camera": {"make": cam.make, "model": cam.model, "lens": cam.lens, "datetime": cam.datetime},
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True, eq=False)
class AlignedBracket:
    """A bracket registered to its reference frame and cropped to the common area."""

    images: np.ndarray  # (N, H, W, 3) float32, linear, in the reference frame's geometry
    ev: tuple[float, ...]
    reference: int
    model: str  # the motion model used: none | translation | euclidean | homography
    transforms: tuple[np.ndarray, ...]  # (3, 3) each: reference pixel -> frame pixel
    # per frame: robust RMS luma difference, after warping, to the frame it was registered
    # against (the reference, or its neighbour towards the reference); inf when unmeasurable
    residuals: tuple[float, ...]
    crop: tuple[int, int, int, int]  # (x, y, width, height) kept, in reference pixels


@dataclass(frozen=True)
class FuseResult:
    """What :func:`uhdfuse.merge` did, for reports and ``--json``."""

    output: Path
    inputs: tuple[Path, ...]
    ev: tuple[float, ...]
    ev_source: EvSource
    reference: int
    engine: str
    align_model: str
    align_residuals: tuple[float, ...]
    crop: tuple[int, int, int, int]
    size: tuple[int, int]  # (width, height) of the output
    timings: dict[str, float]  # seconds per stage; "fuse_model" and "fuse_render" are parts of "fuse"
    warnings: tuple[str, ...] = ()
    model_peak_bytes: int | None = None
    seconds: float = 0.0  # wall time of the whole merge
    virtual_ev: tuple[float, ...] | None = None  # a virtual bracket's EVs relative to its one capture

    def timings_line(self) -> str:
        """'read 0.4, align 1.1, fuse 2.8 (model 0.6, render 1.5), write 0.5' for the human report."""
        parts = []
        for stage, value in self.timings.items():
            if "_" in stage:
                continue  # a part of its stage, shown inside it
            sub = [f"{k.split('_', 1)[1]} {v:.1f}" for k, v in self.timings.items() if k.startswith(stage + "_")]
            parts.append(f"{stage} {value:.1f}" + (f" ({', '.join(sub)})" if sub else ""))
        return ", ".join(parts)

    def to_json(self) -> dict:
        """A JSON-ready dict (paths as strings)."""
        return {
            "output": str(self.output),
            "inputs": [str(p) for p in self.inputs],
            "ev": [round(e, 4) for e in self.ev],
            "ev_source": self.ev_source,
            "virtual_ev": list(self.virtual_ev) if self.virtual_ev is not None else None,
            "reference": self.reference,
            "reference_file": str(self.inputs[self.reference]),
            "engine": self.engine,
            "align_model": self.align_model,
            "align_residuals": [round(r, 5) if math.isfinite(r) else None for r in self.align_residuals],
            "crop": list(self.crop),
            "size": list(self.size),
            "seconds": round(self.seconds, 4),
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
            "model_peak_bytes": self.model_peak_bytes,
            "warnings": list(self.warnings),
        }
