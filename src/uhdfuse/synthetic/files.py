"""Write simulated brackets as the files a camera would produce: JPEG, 16-bit TIFF, DNG.

Files are numbered in capture order, which is the order cameras auto-bracket in
(the metered exposure first, then darker to brighter: 0, -2, +2), not the order
of exposure, so readers must sort by EV themselves. JPEG and TIFF carry the
usual camera EXIF (exposure time as an exact rational, f-number, ISO, bias,
capture time, lens, GPS), an XMP packet and an embedded sRGB ICC profile.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from fractions import Fraction
from pathlib import Path

import exiv2
import numpy as np
import tifffile
from PIL import Image, ImageCms

from uhdfuse.colour import srgb_encode
from uhdfuse.errors import OutputError, first_line
from uhdfuse.synthetic.camera import RenderedBracket, render_bracket
from uhdfuse.synthetic.dng import write_dng
from uhdfuse.synthetic.scene import procedural_scene
from uhdfuse.types import CameraInfo, ExposureInfo

FORMATS = ("jpeg", "tiff", "dng")
SUFFIXES = {"jpeg": ".jpg", "tiff": ".tif", "dng": ".dng"}

CAMERA = CameraInfo(make="uhdfuse", model="Synthetic Camera", lens="uhdfuse Procedural 35mm F2", focal_length=35.0)
F_NUMBER = 8.0
ISO = 100
START_TIME = datetime(2024, 6, 15, 14, 30, 0)
# Where the pictures were "taken" (Zurich old town): degrees, and metres above sea level.
GPS_LATITUDE, GPS_LONGITUDE, GPS_ALTITUDE = 47.3717, 8.5423, 410.0


def capture_order(evs: Sequence[float], reference: int) -> list[int]:
    """Frame indices in the order a camera's auto-bracketing shoots: reference, then by rising EV."""
    rest = sorted((i for i in range(len(evs)) if i != reference), key=lambda i: evs[i])
    return [reference, *rest]


def _fraction(value: float, max_den: int) -> str:
    f = Fraction(value).limit_denominator(max_den)
    return f"{f.numerator}/{f.denominator}"


def _dms(degrees: float) -> str:
    """An EXIF GPS coordinate: three rationals (degrees, minutes, hundredths of seconds)."""
    d = int(abs(degrees))
    m = int((abs(degrees) - d) * 60)
    s = round(((abs(degrees) - d) * 60 - m) * 60 * 100)
    return f"{d}/1 {m}/1 {s}/100"


def _srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _write_metadata(
    path: Path, size: tuple[int, int], exposure: ExposureInfo, camera: CameraInfo, title: str
) -> None:
    """Write camera EXIF and an XMP packet into an existing JPEG or TIFF with exiv2.

    ``size``: (width, height) of the image, for the EXIF pixel dimensions.
    """
    image = exiv2.ImageFactory.open(str(path))
    image.readMetadata()
    exif = image.exifData()
    # The tags EXIF 2.31 makes mandatory, so strict validators accept the files.
    exif["Exif.Image.XResolution"] = "300/1"
    exif["Exif.Image.YResolution"] = "300/1"
    exif["Exif.Image.ResolutionUnit"] = "2"
    exif["Exif.Photo.ExifVersion"] = "48 50 51 49"  # "0231"
    exif["Exif.Photo.FlashpixVersion"] = "48 49 48 48"  # "0100"
    if path.suffix.lower() in (".jpg", ".jpeg"):  # TIFF states its size in IFD0 instead
        exif["Exif.Photo.PixelXDimension"] = str(size[0])
        exif["Exif.Photo.PixelYDimension"] = str(size[1])
        exif["Exif.Image.YCbCrPositioning"] = "1"
        exif["Exif.Photo.ComponentsConfiguration"] = "1 2 3 0"
    exif["Exif.Image.Make"] = camera.make or ""
    exif["Exif.Image.Model"] = camera.model or ""
    exif["Exif.Image.Orientation"] = str(camera.orientation)
    exif["Exif.Image.Software"] = "uhdfuse"
    if camera.datetime is not None:
        exif["Exif.Image.DateTime"] = camera.datetime
        exif["Exif.Photo.DateTimeOriginal"] = camera.datetime
        exif["Exif.Photo.DateTimeDigitized"] = camera.datetime
    if exposure.exposure_time is not None:
        exif["Exif.Photo.ExposureTime"] = _fraction(exposure.exposure_time, 1_000_000)
    if exposure.f_number is not None:
        exif["Exif.Photo.FNumber"] = _fraction(exposure.f_number, 100)
    if exposure.iso is not None:
        exif["Exif.Photo.ISOSpeedRatings"] = str(int(round(exposure.iso)))
    if exposure.bias_ev is not None:
        exif["Exif.Photo.ExposureBiasValue"] = _fraction(exposure.bias_ev, 100)
    exif["Exif.Photo.ExposureProgram"] = "3"  # aperture priority, as when auto-bracketing at f/8
    exif["Exif.Photo.ExposureMode"] = "2"  # auto bracket
    exif["Exif.Photo.ColorSpace"] = "1"  # sRGB
    if camera.focal_length is not None:
        exif["Exif.Photo.FocalLength"] = _fraction(camera.focal_length, 100)
    if camera.lens is not None:
        exif["Exif.Photo.LensModel"] = camera.lens
    exif["Exif.GPSInfo.GPSVersionID"] = "2 3 0 0"
    exif["Exif.GPSInfo.GPSLatitudeRef"] = "N" if GPS_LATITUDE >= 0 else "S"
    exif["Exif.GPSInfo.GPSLatitude"] = _dms(GPS_LATITUDE)
    exif["Exif.GPSInfo.GPSLongitudeRef"] = "E" if GPS_LONGITUDE >= 0 else "W"
    exif["Exif.GPSInfo.GPSLongitude"] = _dms(GPS_LONGITUDE)
    exif["Exif.GPSInfo.GPSAltitudeRef"] = "0"
    exif["Exif.GPSInfo.GPSAltitude"] = _fraction(GPS_ALTITUDE, 10)
    exif["Exif.GPSInfo.GPSProcessingMethod"] = "charset=Ascii MANUAL"
    xmp = image.xmpData()
    xmp["Xmp.dc.title"] = f"lang=x-default {title}"
    xmp["Xmp.dc.creator"] = "uhdfuse"
    xmp["Xmp.xmp.CreatorTool"] = "uhdfuse synthetic bracket"
    image.writeMetadata()


def write_bracket_files(
    out_dir: Path,
    rendered: RenderedBracket,
    fmt: str,
    *,
    exif: bool = True,
    stem: str = "frame",
    order: Sequence[int] | None = None,
) -> list[Path]:
    """Write every frame of ``rendered`` as ``fmt`` ("jpeg", "tiff" or "dng") into ``out_dir``.

    Files are named ``{stem}_0001{suffix}``, ... in capture ``order`` (indices into
    ``rendered.frames``; default :func:`capture_order`), with capture times one
    second apart. JPEG: 8-bit sRGB, quality 95; TIFF: 16-bit sRGB, deflate;
    DNG: 14-bit Bayer (see :func:`write_dng`). ``exif=False`` leaves JPEG and
    TIFF without EXIF and XMP (DNG always has its camera tags). Returns the
    paths in capture order.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create folder: {exc.strerror or exc}", out_dir) from exc
    if order is None:
        order = capture_order(rendered.evs, rendered.reference)
    ref_ev = rendered.evs[rendered.reference]
    icc = _srgb_icc() if fmt != "dng" else b""
    paths = []
    for n, i in enumerate(order):
        path = out_dir / f"{stem}_{n + 1:04d}{SUFFIXES[fmt]}"
        stamp = (START_TIME + timedelta(seconds=n)).strftime("%Y:%m:%d %H:%M:%S")
        exposure = ExposureInfo(
            exposure_time=rendered.exposure_times[i], f_number=F_NUMBER, iso=ISO,
            bias_ev=rendered.evs[i] - ref_ev,
        )
        camera = CameraInfo(
            make=CAMERA.make, model=CAMERA.model, lens=CAMERA.lens,
            focal_length=CAMERA.focal_length, datetime=stamp,
        )
        frame = rendered.frames[i]
        try:
            if fmt == "dng":
                write_dng(path, frame, exposure=exposure, camera=camera)
            else:
                encoded = srgb_encode(np.clip(frame, 0.0, 1.0))
                if fmt == "jpeg":
                    pixels = (encoded * 255.0 + 0.5).astype(np.uint8)
                    Image.fromarray(pixels, "RGB").save(path, "JPEG", quality=95, icc_profile=icc)
                else:
                    pixels = (encoded * 65535.0 + 0.5).astype(np.uint16)
                    tifffile.imwrite(
                        path, pixels, photometric="rgb", compression="zlib", predictor=True,
                        iccprofile=icc, metadata=None,
                    )
                if exif:
                    title = f"uhdfuse synthetic bracket, frame {n + 1}, EV {rendered.evs[i]:+g}"
                    _write_metadata(path, (frame.shape[1], frame.shape[0]), exposure, camera, title)
        except OSError as exc:
            raise OutputError(f"cannot write image: {exc.strerror or exc}", path) from exc
        except exiv2.Exiv2Error as exc:
            raise OutputError(f"cannot write metadata: {first_line(exc)}", path) from exc
        paths.append(path)
    return paths


def write_example_bracket(
    out_dir: Path,
    *,
    width: int = 960,
    height: int = 640,
    evs: Sequence[float] = (-2.0, 0.0, 2.0),
    formats: Sequence[str] = FORMATS,
    shake_px: float = 0.0,
    shake_deg: float = 0.0,
    moving_objects: int = 0,
    seed: int = 0,
) -> dict[str, list[Path]]:
    """Render the procedural scene as a bracket and write it once per format.

    Writes ``out_dir/<format>/bracket_0001.<ext>``, ... (capture order, see
    :func:`capture_order`) and ``out_dir/README.txt``. Returns
    ``{format: [paths in capture order]}``.
    """
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown format {unknown[0]!r}; expected one of {', '.join(FORMATS)}")
    out_dir = Path(out_dir)
    scene = procedural_scene(height, width, seed=seed)
    rendered = render_bracket(
        scene, evs, seed=seed, shake_px=shake_px, shake_deg=shake_deg, moving_objects=moving_objects,
    )
    written = {fmt: write_bracket_files(out_dir / fmt, rendered, fmt, stem="bracket") for fmt in formats}
    order = capture_order(rendered.evs, rendered.reference)
    lines = [
        "Example exposure bracket made by uhdfuse (`uhdfuse example`).",
        "",
        "The scene is procedural: a street with a brick house, sky with sun and clouds, an open",
        "door onto a dark interior, lit windows and a ColorChecker poster, rendered in linear",
        f"light ({width}x{height}, seed {seed}) and photographed by a simulated camera with",
        "sensor noise. Nothing here is a real photograph.",
        "",
        "Frames, in capture order (as a camera auto-brackets: metered exposure first):",
    ]
    for n, i in enumerate(order):
        t = Fraction(rendered.exposure_times[i]).limit_denominator(1_000_000)
        lines.append(f"  bracket_{n + 1:04d}: EV {rendered.evs[i]:+g}, {t.numerator}/{t.denominator} s, f/8, ISO 100")
    lines += [
        "",
        f"Camera shake: up to {shake_px:g} px shift and {shake_deg:g} degrees rotation per frame;"
        f" moving objects: {moving_objects}.",
        "",
        "Folders: " + ", ".join(
            {"jpeg": "jpeg/ (8-bit sRGB JPEG)", "tiff": "tiff/ (16-bit sRGB TIFF)", "dng": "dng/ (14-bit Bayer DNG)"}[f]
            for f in formats
        ) + ".",
        f"Try: uhdfuse merge {out_dir / formats[0]} -o fused.tif" if formats else "",
        "",
    ]
    try:
        (out_dir / "README.txt").write_text("\n".join(lines), encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"cannot write README: {exc.strerror or exc}", out_dir / "README.txt") from exc
    return written
