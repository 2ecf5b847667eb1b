"""Fusion quality of uhdfuse (IPL, Mertens) against OpenCV and enfuse, in one run.

    python benchmarks/quality.py                      # full run, table into BENCHMARKS.md ("Quality")
    python benchmarks/quality.py --quick              # fewer sets, smaller images: a check that it works
    python benchmarks/quality.py --weights weights/ipl-base.safetensors

Tools, each run as a photographer would run it:

* ``ipl``: ``uhdfuse.merge`` (what ``uhdfuse merge FILES -o OUT.tif`` runs) with its
  defaults, the 16-bit TIFF read back; with ``--weights`` (a training variant) the
  IPL engine with those weights on the same registered frames instead;
* ``mertens``: ``uhdfuse.merge`` with ``engine="mertens"``;
* ``opencv``: ``cv2.AlignMTB`` then ``cv2.MergeMertens`` on 8-bit frames;
* ``enfuse``: Hugin's ``align_image_stack`` then ``enfuse`` (Debian: hugin-tools, enfuse),
  default weights; the column is dropped, with a note, when the tools are not installed.

Same inputs, same geometry. Every tool reads the same files: real brackets are
decoded once and written as 8-bit PNG (downscaled to ``--long-side`` when larger),
synthetic ones are 8-bit PNG too. uhdfuse reads them as ``merge`` does (EVs from
the data set's exposure list when it has one, as a camera's EXIF would give them,
else estimated from the pixels), registers them with its default aligner and
crops to the area every frame covers, in the reference (middle exposure) frame's
geometry; its aligned frames are the sources every tool is scored against. The peers register
with their own tools, set up so that their output lies in that same frame's
geometry: AlignMTB shifts every image onto the middle one of its list, so the
reference is put there; align_image_stack keeps its first image fixed
(``--align-to-first``), so the reference goes first. Their full-frame outputs are
then cut to uhdfuse's crop rectangle, and every score below is computed on that
rectangle. A tool that fails on a set is counted and listed, never replaced by
something else (an unregistered fusion, say); medians are over the sets every
tool fused, next to the count of failures.

(a) MEF-SSIM (Ma, Zeng & Wang 2015; :func:`uhdfuse.metrics.mef_ssim`, 3 scales,
p = 4) on real static brackets from ``../shared/data``: MEFB pairs (an evenly
spaced subset of the 100 scenes), Merianos, Mertens' house, Banterle's room,
SSARCandy's three scenes and Debevec's memorial (its blue registration borders
cut off). Series of 1-stop steps longer than 7 frames are thinned to every other
frame (2-stop steps, as photographers bracket). The source sequence of the score
is uhdfuse's aligned frames on the crop rectangle, for every tool.

(b) Ghost PSNR on held-out synthetic scenes: each tool's fusion of a moving (and,
for two in three, hand-held) bracket against the same tool's fusion of the
static bracket of the same scene (objects frozen where the reference frame saw
them, no shake, same exposures and noise), which every tool fuses without
registration. It measures what motion costs each tool, not its taste.
(c) PSNR and SSIM of each tool's moving-bracket fusion against one static
target: uhdfuse Mertens of the static bracket (so ``mertens`` here equals (b)).

(d) Contact sheets (PNG, ``benchmarks/results/contact/``) of the real moving
brackets (Banterle stack_ghost, DSIFT-EF Forrest), the hand-held one (Banterle
stack_alignment) and one synthetic case: the inputs, then each tool, labelled.
The Banterle and DSIFT-EF images are for local evaluation only: do not publish
or commit those sheets.

Held-out cases come from ``uhdfuse.train.data.heldout_cases``: scenes the
training never sees (shared HDR maps and procedural seeds of the held-out split).
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import tifffile
from _common import ROOT, machine_description, record_section

sys.path.insert(0, str(ROOT / "src"))  # measure this checkout, installed or not

from uhdfuse.align import align_bracket
from uhdfuse.classical import fuse_mertens
from uhdfuse.colour import srgb_encode
from uhdfuse.config import AlignConfig, MergeConfig
from uhdfuse.errors import UhdfuseError
from uhdfuse.io import read_encoded
from uhdfuse.metrics import mef_ssim, psnr, ssim
from uhdfuse.nn.weights import default_weights, load_weights
from uhdfuse.pipeline import load_bracket, merge
from uhdfuse.runtime import fuse_ipl
from uhdfuse.train.data import heldout_cases

DATA = ROOT.parent / "shared" / "data"
CONTACT_DIR = ROOT / "benchmarks" / "results" / "contact"
TOOLS = ("ipl", "mertens", "opencv", "enfuse")
PEERS = ("opencv", "enfuse")
LABELS = {
    "ipl": "ipl (uhdfuse IPL)",
    "mertens": "mertens (uhdfuse)",
    "opencv": "OpenCV AlignMTB + MergeMertens",
    "enfuse": "align_image_stack + enfuse",
}


# ------------------------------------------------------------------------------ inputs


@dataclass(frozen=True)
class RealBracket:
    """A bracket from ../shared/data: its files and, when the set lists them, exposure times."""

    name: str
    paths: tuple[Path, ...]
    times: tuple[float, ...] | None = None  # seconds, one per path
    border: int = 0  # pixels cut from every side before use


def _exposure_list(listing: Path) -> dict[str, float]:
    """``file time ...`` lines (``#`` starts a comment line) -> {file name: exposure time in s}."""
    times = {}
    for line in listing.read_text().splitlines():
        parts = line.split()
        if parts and not parts[0].startswith("#"):
            times[parts[0]] = float(parts[1])
    return times


def _listed(name: str, folder: Path, listing: str, *, thin: bool = False, border: int = 0) -> RealBracket:
    """The files named in ``folder/listing``, brightest last; every other one with ``thin``."""
    times = _exposure_list(folder / listing)
    names = sorted(times, key=lambda n: times[n])
    if thin and len(names) > 7:
        names = names[::2]
    return RealBracket(name, tuple(folder / n for n in names), tuple(times[n] for n in names), border)


def _unlisted(name: str, folder: Path, pattern: str) -> RealBracket:
    return RealBracket(name, tuple(sorted(folder.glob(pattern))))


def static_brackets(quick: bool, mefb_count: int) -> list[RealBracket]:
    """The real static brackets of part (a); sets absent from ../shared/data are left out."""
    sets: list[RealBracket] = []
    mefb = DATA / "mefb"
    if mefb.is_dir():
        scenes = sorted(p for p in mefb.iterdir() if p.is_dir())
        picks = sorted({round(i) for i in np.linspace(0, len(scenes) - 1, min(mefb_count, len(scenes)))})
        for i in picks:
            pair = sorted(scenes[i].glob(f"{scenes[i].name}_[AB].*"))
            if len(pair) == 2:
                sets.append(RealBracket(f"mefb/{scenes[i].name}", tuple(pair)))
    merianos = DATA / "merianos_mef"
    if merianos.is_dir():
        for scene in sorted(d for d in merianos.iterdir() if d.is_dir()):
            sets.append(_unlisted(f"merianos/{scene.name}", scene, "*.jpg"))
    if (DATA / "mertens_house").is_dir():
        sets.append(_unlisted("mertens_house", DATA / "mertens_house", "[ABCD].jpg"))
    room = DATA / "banterle_hdrtoolbox_stacks" / "stack"
    if room.is_dir():
        sets.append(_listed("banterle/room", room, "exposures.txt"))
    for scene in ("taipei", "desktop", "living_room2"):
        folder = DATA / "ssarcandy_brackets" / scene
        if folder.is_dir():
            sets.append(_listed(f"ssarcandy/{scene}", folder, "image_list.txt", thin=True))
    memorial = DATA / "debevec_memorial"
    if memorial.is_dir():
        # Pure blue marks the shifted scan borders (README_debevec.txt); none lies
        # more than 32 px inside any frame.
        sets.append(_listed("debevec/memorial", memorial, "memorial.hdr_image_list.txt", thin=True, border=32))
    if quick:
        keep = {"mertens_house", "banterle/room", "ssarcandy/taipei", "debevec/memorial"}
        merianos_first = next((s.name for s in sets if s.name.startswith("merianos/")), None)
        sets = [s for s in sets if s.name.startswith("mefb/") or s.name in keep or s.name == merianos_first]
    return sets


def moving_brackets() -> list[RealBracket]:
    """The real moving and hand-held brackets of the contact sheets."""
    sets = []
    banterle = DATA / "banterle_hdrtoolbox_stacks"
    for sub, name in (("stack_ghost", "banterle_ghost"), ("stack_alignment", "banterle_handheld")):
        if (banterle / sub).is_dir():
            sets.append(_listed(name, banterle / sub, "exposures.txt"))
    forrest = DATA / "dsift_ef_dynamic" / "ForrestSequence"
    if forrest.is_dir():
        sets.append(_listed("dsift_forrest", forrest, "exposures.txt"))
    return sets


def write_real(bracket: RealBracket, folder: Path, long_side: int) -> tuple[list[Path], tuple[float, ...] | None]:
    """Decode a real bracket, cut its border, downscale it to ``long_side`` and write 8-bit PNGs.

    Returns (the PNG paths, in the bracket's order; EVs as log2 exposure time, or None).
    """
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, source in enumerate(bracket.paths):
        image = read_encoded(source)
        if image.dtype != np.uint8:
            image = np.round(image / 257.0).astype(np.uint8)
        if bracket.border:
            b = bracket.border
            image = image[b:-b, b:-b]
        h, w = image.shape[:2]
        if max(h, w) > long_side:
            s = long_side / max(h, w)
            image = cv2.resize(image, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
        path = folder / f"{i:02d}_{source.stem}.png"
        cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        paths.append(path)
    ev = tuple(math.log2(t) for t in bracket.times) if bracket.times else None
    return paths, ev


def write_synthetic(frames: np.ndarray, folder: Path) -> list[Path]:
    """(N, H, W, 3) linear frames -> 8-bit sRGB PNGs ``frame_00.png`` ... in folder."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, frame in enumerate(frames):
        codes = np.round(srgb_encode(np.clip(frame, 0.0, 1.0)) * 255.0).astype(np.uint8)
        path = folder / f"frame_{i:02d}.png"
        cv2.imwrite(str(path), cv2.cvtColor(codes, cv2.COLOR_RGB2BGR))
        paths.append(path)
    return paths


# ------------------------------------------------------------------------------- tools


@dataclass
class Fusion:
    """Every tool's output for one bracket, on uhdfuse's crop of the reference geometry."""

    crop: tuple[int, int, int, int]  # (x, y, width, height) in reference-frame pixels
    reference: int  # index in ``ev`` / ``sources``
    ev: tuple[float, ...]  # ascending
    sources: np.ndarray  # (N, h, w, 3) float32 display sRGB: uhdfuse's aligned frames
    outputs: dict[str, np.ndarray] = field(default_factory=dict)  # tool -> (h, w, 3) float32 in [0, 1]
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)  # tool -> why it produced nothing


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"{Path(cmd[0]).name} exited with {proc.returncode}: {tail[0]}")


def _read_8bit_bgr(path: Path) -> np.ndarray:
    image = read_encoded(path)
    if image.dtype != np.uint8:
        image = np.round(image / 257.0).astype(np.uint8)
    return cv2.cvtColor(image, cv2.COLOR_RGB2BGR)


def fuse_opencv(paths: Sequence[Path], reference: int, align: bool) -> np.ndarray:
    """AlignMTB (when ``align``) + MergeMertens of files sorted by EV; (H, W, 3) float32 RGB in [0, 1]
    in the geometry of ``paths[reference]``."""
    others = [p for i, p in enumerate(paths) if i != reference]
    half = len(paths) // 2  # AlignMTB's pivot: the image it shifts all others onto
    order = others[:half] + [paths[reference]] + others[half:]
    images = [_read_8bit_bgr(p) for p in order]
    if align:
        cv2.createAlignMTB().process(images, images)  # in place
    fused = cv2.createMergeMertens().process(images)
    return np.clip(cv2.cvtColor(fused, cv2.COLOR_BGR2RGB), 0.0, 1.0)


def fuse_enfuse(paths: Sequence[Path], reference: int, align: bool, work: Path) -> np.ndarray:
    """align_image_stack (when ``align``) + enfuse; (H, W, 3) float32 RGB in [0, 1] in the
    geometry of ``paths[reference]`` (align_image_stack's first image stays fixed)."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    inputs = [paths[reference]] + [p for i, p in enumerate(paths) if i != reference]
    if align:
        _run(["align_image_stack", "-a", str(work / "aligned_"), "--align-to-first", *map(str, inputs)])
        inputs = sorted(work.glob("aligned_*.tif"))
    out = work / "enfused.tif"
    _run(["enfuse", "-o", str(out), "--depth=16", *map(str, inputs)])
    image = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise RuntimeError("enfuse wrote no readable output")
    return cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2RGB).astype(np.float32) / np.float32(65535.0)


def fuse_all(
    paths: Sequence[Path],
    *,
    ev: Sequence[float] | None,
    reference: str | None,
    align: bool,
    model,
    weights: Path | None,
    tools: Sequence[str],
    work: Path,
) -> Fusion:
    """Fuse one bracket (files) with every tool, as each is run by a user.

    uhdfuse runs :func:`uhdfuse.merge` (what ``uhdfuse merge FILES -o OUT.tif`` runs)
    with its defaults: registration ``auto`` (``align=False``: ``none``), the reference
    ``reference`` (file name; None: its own choice), EVs ``ev`` when the data set lists
    exposure times (as a camera's EXIF would give them), the shipped weights; its
    16-bit TIFF is read back. With ``weights`` (a training variant) the ipl column
    runs the engine on the same aligned frames with ``model`` instead. A failure of a
    tool is recorded in the fusion's ``failures``, never replaced by something else
    (an unregistered fusion, say). Raises UhdfuseError when uhdfuse cannot register
    the bracket: then there is nothing to score any tool on.
    """
    cfg = MergeConfig(ev=tuple(ev) if ev is not None else None, reference=reference,
                      align=AlignConfig(model="auto" if align else "none"))
    notes: list[str] = []
    bracket = load_bracket(paths, cfg)
    aligned = align_bracket(bracket, cfg.align)  # the sources every tool is scored against
    notes += [n for n in bracket.warnings if "estimated from the pixels" not in n]
    x, y, w, h = aligned.crop
    fusion = Fusion(aligned.crop, aligned.reference, tuple(aligned.ev),
                    srgb_encode(np.clip(aligned.images, 0.0, 1.0)), notes=notes)
    ordered = [f.path for f in bracket.frames]  # ascending EV
    ref_shape = bracket.frames[aligned.reference].image.shape[:2]
    del bracket

    def product(engine: str) -> None:
        out = work / f"uhdfuse-{engine}.tif"
        result = merge(paths, out, replace(cfg, engine=engine, force=True))
        if tuple(result.crop) != tuple(aligned.crop):
            raise RuntimeError(f"merge cropped to {result.crop}, registration alone to {aligned.crop}")
        fusion.outputs[engine] = tifffile.imread(out).astype(np.float32) / 65535.0

    def peer(name: str, run: Callable[[bool], np.ndarray]) -> None:
        full = run(align)
        if full.shape[:2] != ref_shape:
            raise RuntimeError(f"{name} output is {full.shape[1]}x{full.shape[0]}, not the reference's size")
        fusion.outputs[name] = np.ascontiguousarray(full[y : y + h, x : x + w])

    runners: dict[str, Callable[[], None]] = {
        "ipl": (lambda: fusion.outputs.__setitem__(
            "ipl", fuse_ipl(aligned.images, aligned.ev, aligned.reference, model=model)[0]))
        if weights is not None else (lambda: product("ipl")),
        "mertens": lambda: product("mertens"),
        "opencv": lambda: peer("opencv", lambda a: fuse_opencv(ordered, aligned.reference, a)),
        "enfuse": lambda: peer("enfuse", lambda a: fuse_enfuse(ordered, aligned.reference, a, work / "enfuse")),
    }
    work.mkdir(parents=True, exist_ok=True)
    for tool in tools:
        start = time.perf_counter()
        try:
            runners[tool]()
        except (UhdfuseError, RuntimeError, cv2.error) as exc:
            fusion.failures[tool] = str(exc).splitlines()[0]
        fusion.seconds[tool] = time.perf_counter() - start
    # Like with like: a peer whose output sits shifted against uhdfuse's would lose
    # points for geometry, not fusion. Say so when it happens.
    anchor = _grey(fusion.sources[fusion.reference])
    taper = cv2.createHanningWindow(anchor.shape[::-1], cv2.CV_64F)
    for tool in PEERS:
        if tool in fusion.outputs:
            (dx, dy), _ = cv2.phaseCorrelate(anchor, _grey(fusion.outputs[tool]), taper)
            if math.hypot(dx, dy) > 0.75:
                fusion.notes.append(f"{tool} output is offset by ({dx:+.1f}, {dy:+.1f}) px from the reference frame")
    return fusion


def fuse_real(bracket: RealBracket, folder: Path, long_side: int, *, model, weights: Path | None,
              tools: Sequence[str]) -> Fusion:  # fmt: skip
    """Write a real bracket downscaled into ``folder`` and fuse it with every tool
    (raises UhdfuseError when uhdfuse cannot read or register it)."""
    paths, ev = write_real(bracket, folder, long_side)
    return fuse_all(paths, ev=ev, reference=None, align=True, model=model, weights=weights, tools=tools, work=folder)


def _grey(image: np.ndarray) -> np.ndarray:
    """(h, w, 3) display RGB -> (h, w) float64 luma."""
    return np.ascontiguousarray(image.astype(np.float64) @ np.array([0.299, 0.587, 0.114]))


# ------------------------------------------------------------------------ contact sheets


def _tile(image: np.ndarray, label: str, long_side: int) -> np.ndarray:
    """(h, w, 3) display float -> uint8 RGB tile scaled to ``long_side``, a label band on top."""
    h, w = image.shape[:2]
    s = long_side / max(h, w)
    # zoomed tiles keep their pixels square and honest: no smoothing interpolation
    method = cv2.INTER_AREA if s <= 1 else cv2.INTER_NEAREST
    small = cv2.resize(np.clip(image, 0, 1), (round(w * s), round(h * s)), interpolation=method)
    tile = np.round(small * 255).astype(np.uint8)
    band = np.full((26, tile.shape[1], 3), 32, np.uint8)
    cv2.putText(band, label, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return np.vstack([band, tile])


def contact_sheet(rows: list[list[tuple[str, np.ndarray]]], long_side: int) -> np.ndarray:
    """Labelled tiles, one list per row, on a grey ground: (H, W, 3) uint8 RGB."""
    tiles = [[_tile(img, label, long_side) for label, img in row] for row in rows]
    th = max(t.shape[0] for row in tiles for t in row)
    tw = max(t.shape[1] for row in tiles for t in row)
    cols = max(len(row) for row in tiles)
    gap = 6
    sheet = np.full((len(tiles) * (th + gap) + gap, cols * (tw + gap) + gap, 3), 96, np.uint8)
    for r, row in enumerate(tiles):
        for c, t in enumerate(row):
            y0, x0 = gap + r * (th + gap), gap + c * (tw + gap)
            sheet[y0 : y0 + t.shape[0], x0 : x0 + t.shape[1]] = t
    return sheet


def motion_window(fusion: Fusion) -> tuple[slice, slice]:
    """The (rows, cols) window, a third of each side, where the frames disagree most
    once their tones are matched: where ghosts would be."""
    ref = fusion.reference
    lum = [_grey(s) for s in fusion.sources]
    levels = np.linspace(0.0, 1.0, 257)
    target = np.quantile(lum[ref], levels)
    energy = np.zeros_like(lum[ref])
    for i in range(len(lum)):
        if i != ref:
            # Histogram matching, not the EV ratio: camera JPEGs are not sRGB-encoded,
            # and a wrong curve would show as disagreement everywhere.
            matched = np.interp(lum[i], np.quantile(lum[i], levels), target)
            usable = (np.minimum(lum[i], lum[ref]) > 0.03) & (np.maximum(lum[i], lum[ref]) < 0.97)
            energy += usable & (np.abs(matched - lum[ref]) > 0.2)
    h, w = energy.shape
    # An opening keeps solid blobs (a person, a car) and drops thin edge slivers
    # (foliage in the wind, sub-pixel registration error along sky lines).
    size = max(3, min(h, w) // 50)
    energy = cv2.morphologyEx(energy.astype(np.float32), cv2.MORPH_OPEN, np.ones((size, size), np.uint8))
    wh, ww = max(1, h // 3), max(1, w // 3)
    mean = cv2.boxFilter(energy, cv2.CV_64F, (ww, wh), normalize=True, borderType=cv2.BORDER_CONSTANT)
    cy, cx = np.unravel_index(int(np.argmax(mean)), mean.shape)
    y0 = int(np.clip(cy - wh // 2, 0, h - wh))
    x0 = int(np.clip(cx - ww // 2, 0, w - ww))
    return slice(y0, y0 + wh), slice(x0, x0 + ww)


def sheet_rows(fusion: Fusion, tools: Sequence[str], extra: Sequence[tuple[str, np.ndarray]] = ()) -> list[list]:
    """Row 1: the inputs; row 2: ``extra`` then each tool; row 3: the same, zoomed on
    the window of most motion (:func:`motion_window`), beside the reference frame."""
    inputs = [
        (f"input EV {e:+.1f}" + (" (reference)" if i == fusion.reference else ""), src)
        for i, (e, src) in enumerate(zip(fusion.ev, fusion.sources))
    ]
    outputs = list(extra) + [(LABELS[t], fusion.outputs[t]) for t in tools if t in fusion.outputs]
    rows, cols = motion_window(fusion)
    shown = [("reference input", fusion.sources[fusion.reference]), *extra]
    shown += [(t, fusion.outputs[t]) for t in tools if t in fusion.outputs]
    zoom = [(f"zoom: {label}", image[rows, cols]) for label, image in shown]
    return [inputs, outputs, zoom]


def save_sheet(name: str, rows: list[list], long_side: int) -> Path:
    CONTACT_DIR.mkdir(parents=True, exist_ok=True)
    path = CONTACT_DIR / f"{name}.png"
    cv2.imwrite(str(path), cv2.cvtColor(contact_sheet(rows, long_side), cv2.COLOR_RGB2BGR))
    return path


# ------------------------------------------------------------------------------ report


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _fmt(value: float | None, digits: int) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _complete(rows: list[dict[str, float]], tools: Sequence[str]) -> list[dict[str, float]]:
    """Rows where every tool has a finite score: medians compare like with like."""
    return [r for r in rows if all(math.isfinite(r.get(t, float("nan"))) for t in tools)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, help="IPL .safetensors (default: the shipped weights).")
    parser.add_argument("--quick", action="store_true", help="Few sets, small images: checks that it all runs.")
    parser.add_argument("--long-side", type=int, help="Downscale inputs to this long side (default 1200; quick 512).")
    parser.add_argument("--mefb", type=int, help="MEFB scenes, evenly spaced (default 24; quick 3).")
    parser.add_argument("--cases", type=int, help="Held-out synthetic cases (default 8; quick 3).")
    parser.add_argument("--case-size", type=int, help="Height of the synthetic cases (default 384; quick 192).")
    parser.add_argument("--no-record", action="store_true", help="Print only; leave BENCHMARKS.md alone.")
    args = parser.parse_args()
    long_side = args.long_side or (512 if args.quick else 1200)
    mefb_count = args.mefb if args.mefb is not None else (3 if args.quick else 24)
    n_cases = args.cases if args.cases is not None else (3 if args.quick else 8)
    case_size = args.case_size or (192 if args.quick else 384)
    sheet_side = 360 if args.quick else 480
    started = time.perf_counter()

    weights_path = Path(args.weights) if args.weights else default_weights()
    variant = Path(args.weights) if args.weights else None  # None: the product's own weights, through merge
    model, manifest = load_weights(weights_path)
    tools = list(TOOLS)
    notes: list[str] = []
    if not (shutil.which("align_image_stack") and shutil.which("enfuse")):
        tools.remove("enfuse")
        notes.append("align_image_stack/enfuse not installed: enfuse column left out.")
    peers = [t for t in PEERS if t in tools]

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    work = Path(tempfile.mkdtemp(prefix="uhdfuse-quality-"))
    try:
        # (a) MEF-SSIM on real static brackets
        mef_rows: list[dict] = []
        failures: list[tuple[str, str, str]] = []  # (what, tool, why)
        attempted = 0
        for bracket in static_brackets(args.quick, mefb_count):
            folder = work / "static" / bracket.name.replace("/", "_")
            attempted += 1
            try:
                fusion = fuse_real(bracket, folder, long_side, model=model, weights=variant, tools=tools)
            except UhdfuseError as exc:
                failures += [(bracket.name, t, f"{exc} (no tool scored: no registered frames)") for t in ("ipl", "mertens")]
                log(f"{bracket.name}: uhdfuse failed ({exc})")
                continue
            failures += [(bracket.name, t, why) for t, why in fusion.failures.items()]
            row = {"set": bracket.name, "frames": len(fusion.sources),
                   "size": f"{fusion.crop[2]}x{fusion.crop[3]}"}
            for tool in tools:
                out = fusion.outputs.get(tool)
                row[tool] = mef_ssim(fusion.sources, out) if out is not None else float("nan")
                row[f"{tool} s"] = fusion.seconds[tool]
            notes += [f"{bracket.name}: {n}" for n in fusion.notes]
            mef_rows.append(row)
            log(f"(a) {bracket.name}: " + ", ".join(f"{t} {row[t]:.4f}" for t in tools))

        # (b), (c) held-out synthetic scenes
        source = "uhdfuse.train.data.heldout_cases"
        cases = heldout_cases(n_cases, 0, size=case_size, aligned=False)
        ghost_rows: list[dict] = []
        target_rows: list[dict] = []
        synthetic_sheet: list[list] | None = None
        for k, (moving, static, ev, ref) in enumerate(cases):
            name = f"case{k} ({len(ev)} frames, {moving.shape[2]}x{moving.shape[1]})"
            folder = work / "synthetic" / f"case{k}"
            moving_paths = write_synthetic(moving, folder / "moving")
            static_paths = write_synthetic(static, folder / "static")
            try:
                fm = fuse_all(moving_paths, ev=ev, reference=moving_paths[ref].name, align=True,
                              model=model, weights=variant, tools=tools, work=folder / "moving")
                fs = fuse_all(static_paths, ev=ev, reference=static_paths[ref].name, align=False,
                              model=model, weights=variant, tools=tools, work=folder / "static")
            except UhdfuseError as exc:
                failures += [(name, t, f"{exc} (no tool scored)") for t in ("ipl", "mertens")]
                log(f"{name}: uhdfuse failed ({exc})")
                continue
            failures += [(f"{name} moving", t, why) for t, why in fm.failures.items()]
            failures += [(f"{name} static", t, why) for t, why in fs.failures.items()]
            x, y, w, h = fm.crop
            ghost = {"case": name}
            versus = {"case": name}
            target = fs.outputs["mertens"][y : y + h, x : x + w]
            for tool in tools:
                out, still = fm.outputs.get(tool), fs.outputs.get(tool)
                ghost[tool] = psnr(out, still[y : y + h, x : x + w]) if out is not None and still is not None \
                    else float("nan")
                versus[tool] = (psnr(out, target), ssim(out, target)) if out is not None else None
            notes += [f"{name} moving: {n}" for n in fm.notes] + [f"{name} static: {n}" for n in fs.notes]
            ghost_rows.append(ghost)
            target_rows.append(versus)
            log(f"(b) {name}: " + ", ".join(f"{t} {ghost[t]:.2f} dB" for t in tools))
            if synthetic_sheet is None and (fm.crop[2], fm.crop[3]) != (moving.shape[2], moving.shape[1]):
                # the first hand-held case (registration cropped it)
                synthetic_sheet = sheet_rows(fm, tools, [("static target", target)])
                save_sheet("synthetic_handheld", synthetic_sheet, sheet_side)

        # (d) contact sheets of the real moving and hand-held brackets
        sheets = []
        for bracket in moving_brackets():
            folder = work / "moving" / bracket.name
            try:
                fusion = fuse_real(bracket, folder, long_side, model=model, weights=variant, tools=tools)
            except UhdfuseError as exc:
                failures += [(bracket.name, t, str(exc)) for t in ("ipl", "mertens")]
                continue
            failures += [(bracket.name, t, why) for t, why in fusion.failures.items()]
            notes += [f"{bracket.name}: {n}" for n in fusion.notes]
            sheets.append(save_sheet(bracket.name, sheet_rows(fusion, tools), sheet_side))
            log(f"(d) {sheets[-1]}")
        if synthetic_sheet is not None:
            sheets.append(CONTACT_DIR / "synthetic_handheld.png")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    minutes = (time.perf_counter() - started) / 60.0

    # ---- tables
    header = "| " + " | ".join(tools) + " |"
    rule = "|" + "---:|" * len(tools)
    lines = ["### (a) MEF-SSIM on real static brackets (higher is better)", "",
             "| set | frames | size | " + header[2:], "|---|---:|---|" + rule[1:]]
    for r in mef_rows:
        lines.append(f"| {r['set']} | {r['frames']} | {r['size']} | "
                     + " | ".join(_fmt(r[t], 4) for t in tools) + " |")
    mef_ok = _complete(mef_rows, tools)
    mef_median = {t: _median([r[t] for r in mef_ok]) for t in tools}
    lines.append(f"| **median** ({len(mef_ok)} sets every tool fused) | | | "
                 + " | ".join(f"**{_fmt(mef_median[t], 4)}**" for t in tools) + " |")
    failed_a = {t: sum(1 for r in mef_rows if not math.isfinite(r.get(t, float("nan")))) for t in tools}
    unscored = attempted - len(mef_rows)
    lines.append(f"| **failed** (of {attempted} sets) | | | " + " | ".join(
        f"**{failed_a[t] + (unscored if t in ('ipl', 'mertens') else 0)}**" for t in tools) + " |")
    lines += ["", "Mean time per set, everything included (uhdfuse: the whole `merge`, reading to writing the "
              "16-bit TIFF; the peers: their registration and fusion): " + ", ".join(
                  f"{t} {_fmt(statistics.fmean(r[f'{t} s'] for r in mef_rows) if mef_rows else None, 2)} s"
                  for t in tools) + "."]

    lines += ["", "### (b) Ghost PSNR on held-out synthetic moving/hand-held scenes (dB, higher = fewer ghosts)", "",
              "Each tool's fusion of the moving bracket against its own fusion of the static bracket.", "",
              "| case | " + header[2:], "|---|" + rule[1:]]
    for r in ghost_rows:
        lines.append(f"| {r['case']} | " + " | ".join(_fmt(r[t], 2) for t in tools) + " |")
    ghost_ok = _complete(ghost_rows, tools)
    ghost_median = {t: _median([r[t] for r in ghost_ok]) for t in tools}
    lines.append(f"| **median** ({len(ghost_ok)} cases) | " + " | ".join(f"**{_fmt(ghost_median[t], 2)}**" for t in tools) + " |")
    failed_b = {t: len({what.split(" ")[0] for what, tool, _ in failures if tool == t and what.startswith("case")})
                for t in tools}
    lines.append(f"| **failed** (of {len(cases)} cases) | " + " | ".join(f"**{failed_b[t]}**" for t in tools) + " |")

    lines += ["", "### (c) PSNR (dB) / SSIM against the static target (uhdfuse Mertens of the static bracket)", "",
              "| case | " + header[2:], "|---|" + rule[1:]]
    for r in target_rows:
        lines.append(f"| {r['case']} | " + " | ".join(
            "—" if r[t] is None else f"{_fmt(r[t][0], 2)} / {_fmt(r[t][1], 4)}" for t in tools) + " |")
    done = [r for r in target_rows if all(r[t] is not None for t in tools)]
    lines.append(f"| **median** ({len(done)} cases) | " + " | ".join(
        f"**{_fmt(_median([r[t][0] for r in done]), 2)} / {_fmt(_median([r[t][1] for r in done]), 4)}**"
        for t in tools) + " |")

    # ---- acceptance, computed
    ok_mef = mef_median["ipl"] >= mef_median["mertens"]
    best_peer = max(peers, key=lambda t: ghost_median[t]) if peers else None
    bar = ghost_median[best_peer] + 3.0 if best_peer else float("nan")
    ok_ghost = bool(best_peer) and ghost_median["ipl"] >= bar
    verdict = {True: "**met**", False: "**not met**"}
    mef_line = (f"- Median MEF-SSIM on real static brackets: ipl {_fmt(mef_median['ipl'], 4)} vs mertens "
                f"{_fmt(mef_median['mertens'], 4)} (needs ipl ≥ mertens): {verdict[ok_mef]}.")
    ghost_line = (f"- Median ghost PSNR on held-out moving scenes: ipl {_fmt(ghost_median['ipl'], 2)} dB vs best "
                  f"peer {best_peer} {_fmt(ghost_median.get(best_peer, float('nan')), 2)} dB + 3 dB = "
                  f"{_fmt(bar, 2)} dB (needs ipl ≥ that): {verdict[ok_ghost]}.")
    sheet_line = ("- Seams, halos, colour shifts: look at the contact sheets ("
                  + ", ".join(f"`{p.relative_to(ROOT)}`" for p in sheets) + "); not computed.")
    lines += ["", "### Acceptance (computed by this run)", "", mef_line, ghost_line, sheet_line]
    lines += ["", "### Failures (every one counted; nothing is replaced by an unregistered fusion)", ""]
    lines += [f"- {what}, {tool}: {why}" for what, tool, why in failures] or ["- none"]

    trained = manifest.get("trained")
    try:
        shown = weights_path.resolve().relative_to(ROOT)
    except ValueError:
        shown = weights_path
    command = ("`python benchmarks/quality.py" + (" --quick" if args.quick else "")
               + (f" --weights {args.weights}" if args.weights else "") + "`")
    intro = [
        f"{command} — {time.strftime('%Y-%m-%d')}, {minutes:.1f} min. Machine: {machine_description()}.",
        (f"Weights: `{shown}` (variant {manifest.get('variant')}, "
         f"{'trained' if trained else 'UNTRAINED'}, sha256 {str(manifest.get('sha256'))[:12]}…)."),
        (f"Inputs downscaled to a long side ≤ {long_side} px; {len(mef_rows)} real static sets "
         f"({mefb_count} MEFB scenes requested); {len(ghost_rows)} held-out cases from {source}. "
         "MEF-SSIM: Ma et al. 2015, 3 scales, p = 4, on uhdfuse's crop of the reference geometry "
         "(see the script's docstring for how the peers are brought there)."),
        "",
    ]
    if args.quick:
        intro.insert(0, "**Quick run** (`--quick`): few sets and small images, a check that the benchmark "
                        "runs, not the figures to judge the model by.\n")
    body = "## Quality\n\n" + "\n".join(intro + lines)
    if notes:
        body += "\n\nNotes:\n\n" + "\n".join(f"- {n}" for n in dict.fromkeys(notes))
    print(body)
    if not args.no_record:
        record_section("quality", body)


if __name__ == "__main__":
    main()
