"""Single-RAW HDR against the real bracket of the same scene, and its time at 24 MP.

    python benchmarks/single_raw.py                # table into BENCHMARKS.md ("Single RAW")
    python benchmarks/single_raw.py --quick        # two scenes, small, no 24 MP run

Scenes: procedural HDR scenes and, when ``../shared/data`` is beside the project, the
ILM OpenEXR photographs, each rendered by the project's camera model (shot and read
noise of a 20 000 e- sensor, 14-bit DNG) as a real bracket at EV 0, +2, +4. The
single capture is its EV 0 frame, the one a photographer exposing for the sky takes.

Columns, each scored against ``uhdfuse merge`` of the real 3-frame bracket (default
settings, display output): ``uhdfuse merge IMG.dng --virtual-ev 0,2,4`` as shipped
(brighter frames from a denoised copy of the capture), the same virtual bracket
without the denoise (an ablation, through the library), and ``uhdfuse merge IMG.dng``
with its automatic EVs. PSNR and SSIM over the image and PSNR over its darkest
quarter (where the pushed noise lives). Contact sheets of the two scenes farthest
from the real bracket go to ``benchmarks/results/contact/single_raw_*.png``: the
capture as it is, the real bracket's fusion, the virtual ones, and 100 % crops of
the shadows.

Time: ``uhdfuse merge`` of one 6000x4000 DNG, as its own process (decoding included),
default engine and ``--engine mertens``: wall time and peak resident memory.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from datetime import date
from pathlib import Path

import cv2
import numpy as np

from _common import ROOT, machine_description, record_section, run_measured
from uhdfuse import MergeConfig, merge
from uhdfuse.align import align_bracket
from uhdfuse.colour import luma, srgb_encode
from uhdfuse.config import AlignConfig, AlignModel
from uhdfuse.io import read_frame
from uhdfuse.metrics import psnr, ssim
from uhdfuse.pipeline import fuse
from uhdfuse.synthetic import procedural_scene, write_dng
from uhdfuse.synthetic.camera import render_bracket
from uhdfuse.types import CameraInfo, ExposureInfo
from uhdfuse.virtual import virtual_bracket

EVS = (0.0, 2.0, 4.0)
SHARED = ROOT.parent / "shared" / "data"
CONTACT_DIR = ROOT / "benchmarks" / "results" / "contact"
CAMERA = CameraInfo(make="uhdfuse", model="Synthetic Camera")


def scenes(quick: bool, long_side: int) -> dict[str, np.ndarray]:
    """name -> (H, W, 3) float32 radiance."""
    found = {f"procedural-{s}": procedural_scene(long_side * 2 // 3, long_side, seed=100 + s) for s in range(2 if quick else 3)}
    exr = SHARED / "openexr_hdr"
    if exr.exists() and not quick:
        from uhdfuse.train.radiance import read_radiance

        for path in sorted(exr.glob("*.exr")):
            radiance = read_radiance(path)
            h, w = radiance.shape[:2]
            s = min(1.0, long_side / max(h, w))
            found[path.stem] = cv2.resize(radiance, (round(w * s) // 2 * 2, round(h * s) // 2 * 2), interpolation=cv2.INTER_AREA)
    return found


def write_bracket(radiance: np.ndarray, folder: Path, seed: int) -> list[Path]:
    rendered = render_bracket(radiance, EVS, seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    return [
        write_dng(folder / f"IMG_{i + 1:04d}.dng", frame, camera=CAMERA,
                  exposure=ExposureInfo(exposure_time=rendered.exposure_times[i], f_number=8.0, iso=100.0))
        for i, frame in enumerate(rendered.frames)
    ]  # fmt: skip


def read16(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB).astype(np.float32) / 65535.0


def undenoised(capture: Path) -> np.ndarray:
    """The shipped virtual bracket but for the denoise, fused with the default engine."""
    bracket = virtual_bracket(read_frame(capture), EVS, clean=False)
    image, _ = fuse(align_bracket(bracket, AlignConfig(model=AlignModel.NONE)), MergeConfig())
    return image


def scores(image: np.ndarray, target: np.ndarray) -> tuple[float, float, float]:
    y = luma(target)
    dark = y <= np.percentile(y, 25)
    error = float(np.mean((image - target)[dark] ** 2))
    return psnr(image, target, data_range=1.0), ssim(image, target, data_range=1.0), 10 * np.log10(1.0 / max(error, 1e-12))


def shadow_crop(target: np.ndarray, side: int = 160) -> tuple[slice, slice]:
    """The ``side``-pixel window of the darkest mean luma that still holds detail."""
    y = cv2.blur(luma(target), (side, side))
    h, w = y.shape
    half = side // 2
    y = y[half : h - half, half : w - half]
    cy, cx = np.unravel_index(int(np.argmin(y)), y.shape)
    return slice(cy, cy + side), slice(cx, cx + side)


def sheet(name: str, capture: np.ndarray, images: list[tuple[str, np.ndarray]]) -> Path:
    rows, cols = shadow_crop(images[0][1])
    shown = [("capture as is", capture), *images]
    tiles = []
    for label, image in shown:
        full = cv2.resize(np.clip(image, 0, 1), (480, round(480 * image.shape[0] / image.shape[1])), interpolation=cv2.INTER_AREA)
        crop = cv2.resize(np.clip(image[rows, cols], 0, 1), None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
        pad = np.zeros((crop.shape[0], full.shape[1], 3), np.float32)
        pad[:, : crop.shape[1]] = crop
        tile = np.vstack([full, pad])
        band = np.full((24, tile.shape[1], 3), 32, np.uint8)
        cv2.putText(band, label, (6, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(np.vstack([band, np.round(tile * 255).astype(np.uint8)]))
    CONTACT_DIR.mkdir(parents=True, exist_ok=True)
    path = CONTACT_DIR / f"single_raw_{name}.png"
    cv2.imwrite(str(path), cv2.cvtColor(np.hstack(tiles), cv2.COLOR_RGB2BGR))
    return path


def time_24mp(work: Path) -> list[str]:
    radiance = procedural_scene(4000, 6000, seed=7)
    capture = write_bracket(radiance, work / "24mp", seed=7)[0]
    del radiance
    lines = ["| command | wall (s) | peak RSS (MiB) |", "|---|---:|---:|"]
    for label, extra in (("uhdfuse merge IMG.dng", []), ("uhdfuse merge IMG.dng --engine mertens", ["-e", "mertens"])):
        out = work / f"24mp_{len(extra)}.tif"
        run = run_measured([sys.executable, "-m", "uhdfuse", "merge", str(capture), "-o", str(out), "-f", *extra])
        lines.append(f"| `{label}` (6000x4000, automatic EVs) | {run.seconds:.1f} | {run.peak_rss_mib:.0f} |")
        print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Two small scenes, no 24 MP run.")
    parser.add_argument("--long-side", type=int, default=900)
    parser.add_argument("--no-record", action="store_true", help="Print only; leave BENCHMARKS.md alone.")
    args = parser.parse_args()
    long_side = 384 if args.quick else args.long_side
    header = "| scene | virtual 0,2,4 PSNR | SSIM | shadows PSNR | without denoise PSNR | shadows PSNR | automatic EVs | PSNR |"
    lines = [header, "|---|---:|---:|---:|---:|---:|---|---:|"]
    ranked = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for i, (name, radiance) in enumerate(scenes(args.quick, long_side).items()):
            paths = write_bracket(radiance, work / name, seed=i)
            real = read16(merge(paths, work / f"{name}_real.tif").output)
            shipped = read16(merge(paths[:1], work / f"{name}_v.tif", MergeConfig(virtual_ev=EVS)).output)
            plain = undenoised(paths[0])
            auto = merge(paths[:1], work / f"{name}_auto.tif")
            s, p, a = scores(shipped, real), scores(plain, real), scores(read16(auto.output), real)
            evs = ", ".join(f"{e:+g}" for e in auto.virtual_ev or ())
            lines.append(f"| {name} | {s[0]:.2f} | {s[1]:.4f} | {s[2]:.2f} | {p[0]:.2f} | {p[2]:.2f} | {evs} | {a[0]:.2f} |")
            print(lines[-1], flush=True)
            capture = srgb_encode(np.clip(read_frame(paths[0]).image, 0, 1))
            ranked.append((s[0], name, capture, [("real bracket", real), ("virtual 0,2,4", shipped), ("no denoise", plain)]))
        for _, name, capture, images in sorted(ranked, key=lambda r: r[0])[:2]:
            print("contact sheet:", sheet(name, capture, images))
        timing = [] if args.quick else time_24mp(work)
    if args.no_record or args.quick:
        return
    body = "\n".join([
        "## Single RAW: virtual bracket vs the real bracket",
        "",
        f"`python benchmarks/single_raw.py`, {date.today().isoformat()}. Machine: {machine_description()}.",
        "",
        "Each scene rendered as a real 14-bit DNG bracket at EV 0, +2, +4 (shot and read noise); the single "
        "capture is its EV 0 frame. Scores against `uhdfuse merge` of the real bracket (default engine, display output); "
        "shadows = the darkest quarter of its luma.",
        "",
        *lines,
        "",
        *timing,
    ])  # fmt: skip
    record_section("single_raw", body)


if __name__ == "__main__":
    main()
