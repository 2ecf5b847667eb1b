"""IPL on a GPU: model, render and fused fps on brackets already on the device, peak
device memory, and an end-to-end ``uhdfuse merge --device cuda``.

    python benchmarks/gpu.py                         # 4K and 8K, 3 frames; table into BENCHMARKS.md
    python benchmarks/gpu.py --no-record --sizes 4k --repeats 10 --compile
    python benchmarks/gpu.py --device cpu --sizes 384x256 --e2e-size 480x320 --no-record   # checks the script

Without a CUDA GPU (and without ``--device cpu``) it prints one line and exits 0,
leaving BENCHMARKS.md alone.

Per size, for frames held on the device in float32 (what ``fuse_ipl`` uploads,
:data:`uhdfuse.runtime.engine.DEVICE_FRAMES`) and in float16:

* model: :func:`~uhdfuse.runtime.stream.stream_maps` reading the device-resident frames
  (tokenize + token network; the head copies its rows of the maps back per step);
* render: :func:`~uhdfuse.runtime.render_torch.render_maps_torch` on the device frames and maps;
* fused: the two in a row, as ``fuse_ipl`` runs them on the device (maps uploaded once);
* peak: ``torch.cuda.max_memory_allocated`` during the fused runs minus what was
  allocated before them (the frames, the weights), and the frames' own size.

Then ``fuse_ipl`` from host frames (upload + fused + download of the result), and the
end-to-end wall time of ``uhdfuse merge --engine ipl`` on a generated JPEG bracket
(JPEG out) with ``--device cuda`` and ``--device cpu``, with the stages' own timings
(``--json``): decode, align, fuse (model / render), encode.

Timing: warm-up runs first (kernels, allocator, cuDNN choices), then ``--repeats``
runs, each between ``torch.cuda.synchronize()`` calls; the median and the best; fps =
1 / median. The model is the shipped default weights (ipl_base, trained).
``--compile`` adds a row per size for the render under ``torch.compile`` (not part of
the engine; measured only where a GPU is lent).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import torch
from _common import machine_description, record_section

from uhdfuse.config import MergeConfig
from uhdfuse.nn.weights import load_weights
from uhdfuse.runtime.device import compute_dtype
from uhdfuse.runtime.engine import DEVICE_FRAMES, DEVICE_TILE_PIXELS, fuse_ipl
from uhdfuse.runtime.render_torch import render_maps_torch
from uhdfuse.runtime.stream import stream_maps

SIZES = {"4k": (3840, 2160), "8k": (7680, 4320)}
EV = [-2.0, 0.0, 2.0]
REFERENCE = 1
MIB = 2**20


def parse_size(text: str) -> tuple[int, int]:
    """'4k', '8k' or 'WxH' -> (width, height)."""
    text = text.strip().lower()
    if text in SIZES:
        return SIZES[text]
    width, height = text.split("x")
    return int(width), int(height)


def device_bracket(width: int, height: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """3 frames 2 EV apart of a tiled random scene, made on the device: (3, H, W, 3) linear."""
    gen = torch.Generator(device=device).manual_seed(0)
    tile = (torch.rand((256, 256, 3), generator=gen, device=device) * 2.0) ** 2
    scene = tile.repeat(-(-height // 256), -(-width // 256), 1)[:height, :width]
    return torch.stack([(scene * (2.0**e / 4.0)).clamp_(0, 1) for e in EV]).to(dtype)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(run: Callable[[], object], device: torch.device, warmup: int, repeats: int) -> tuple[list[float], int | None]:
    """Seconds of each measured run, and the peak device memory above what was allocated
    before them (None off CUDA). ``run``'s result is dropped at once."""
    for _ in range(warmup):
        run()
    sync(device)
    base = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        run()
        sync(device)
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) - base if device.type == "cuda" else None
    return times, peak


def rate(times: list[float]) -> str:
    median = statistics.median(times)
    return f"{1e3 * median:.1f} / {1e3 * min(times):.1f} ms, {1 / median:.1f} fps"


def on_device_rows(model, size: tuple[int, int], device: torch.device, args) -> list[str]:
    """Table rows of one size: model, render and fused on device-resident frames."""
    width, height = size
    patch = model.cfg.patch
    maps = np.zeros((-(-height // patch), -(-width // patch), 2 * len(EV)), np.float32)
    stream = {"cache_bits": args.cache_bits, "chunk": args.chunk, "device": device,
              "dtype": compute_dtype(device), "out": maps, "tile_pixels": DEVICE_TILE_PIXELS}
    rows = []
    for dtype in dict.fromkeys((DEVICE_FRAMES, torch.float16)):
        frames = device_bracket(width, height, device, dtype)
        frames_mib = frames.nelement() * frames.element_size() / MIB

        def model_only(frames: torch.Tensor = frames) -> None:
            stream_maps(model, frames, EV, REFERENCE, **stream)

        def fused(frames: torch.Tensor = frames) -> None:
            stream_maps(model, frames, EV, REFERENCE, **stream)
            render_maps_torch(frames, torch.from_numpy(maps).to(device), EV, REFERENCE, patch)

        model_only()  # the maps the render rows read
        maps_on_device = torch.from_numpy(maps).to(device)

        def render_only(frames: torch.Tensor = frames, maps_on_device: torch.Tensor = maps_on_device) -> None:
            render_maps_torch(frames, maps_on_device, EV, REFERENCE, patch)

        model_times, _ = timed(model_only, device, args.warmup, args.repeats)
        render_times, render_peak = timed(render_only, device, args.warmup, args.repeats)
        fused_times, fused_peak = timed(fused, device, args.warmup, args.repeats)
        peaks = " / ".join("-" if p is None else f"{p / MIB:.0f}" for p in (fused_peak, render_peak))
        name = str(dtype).replace("torch.", "")
        rows.append(f"| {width}x{height} | {name} | {rate(model_times)} | {rate(render_times)} | "
                    f"{rate(fused_times)} | {peaks} | {frames_mib:.0f} |")
        if args.compile:
            rows.append(compiled_row(frames, maps_on_device, patch, name, size, device, args))
        print(rows[-1], file=sys.stderr, flush=True)
        del frames, maps_on_device
    return rows


def compiled_row(frames, maps, patch: int, name: str, size: tuple[int, int], device: torch.device, args) -> str:
    """The render under torch.compile (its first calls compile: they are the warm-up)."""
    try:
        render = torch.compile(render_maps_torch, dynamic=False)
        times, peak = timed(lambda: render(frames, maps, EV, REFERENCE, patch), device, max(3, args.warmup),
                            args.repeats)
        result = f"{rate(times)}, peak {'-' if peak is None else f'{peak / MIB:.0f}'} MiB"
    except Exception as exc:  # noqa: BLE001 - an optional row: say what failed (compilers fail many ways)
        result = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
    return f"| {size[0]}x{size[1]} | {name} | | render under torch.compile: {result} | | | |"


def host_row(model, size: tuple[int, int], device: torch.device, args) -> str:
    """fuse_ipl from host frames: upload, model, render, download."""
    width, height = size
    images = device_bracket(width, height, torch.device("cpu"), torch.float32).numpy()
    seconds = []
    for i in range(args.warmup + args.repeats):
        start = time.perf_counter()
        _, stats = fuse_ipl(images, EV, REFERENCE, device=device.type, chunk=args.chunk,
                            cache_bits=args.cache_bits, model=model)
        if i >= args.warmup:
            seconds.append(time.perf_counter() - start)
    return (f"| {width}x{height} | fuse_ipl from host frames: {rate(seconds)} (model {stats.model_seconds:.3f} s, "
            f"render {stats.render_seconds:.3f} s on {stats.render_device}) |")


def end_to_end(size: tuple[int, int], devices: list[str], repeats: int) -> list[str]:
    """``uhdfuse merge`` wall time and stage timings on a generated JPEG bracket, per device."""
    width, height = size
    work = Path(tempfile.mkdtemp(prefix="uhdfuse-gpu-"))
    rows = []
    try:
        make = ("import sys; from pathlib import Path; from uhdfuse.synthetic import write_example_bracket; "
                "write_example_bracket(Path(sys.argv[1]), width=int(sys.argv[2]), height=int(sys.argv[3]), "
                "formats=('jpeg',), shake_px=4.0, seed=1)")
        subprocess.run([sys.executable, "-c", make, str(work / "in"), str(width), str(height)], check=True)
        inputs = [str(p) for p in sorted((work / "in" / "jpeg").glob("*.jpg"))]
        for device in devices:
            cmd = [sys.executable, "-m", "uhdfuse", "merge", *inputs, "-o", str(work / "out.jpg"),
                   "--engine", "ipl", "--device", device, "--force", "--json"]
            walls, stages = [], []
            for _ in range(repeats):
                start = time.perf_counter()
                done = subprocess.run(cmd, check=False, capture_output=True, text=True)
                walls.append(time.perf_counter() - start)
                if done.returncode != 0:
                    raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
                stages.append(json.loads(done.stdout.strip().splitlines()[-1])["timings"])
            best = stages[walls.index(min(walls))]
            parts = ", ".join(f"{k} {v:.2f}" for k, v in best.items())
            rows.append(f"| {device} | {statistics.median(walls):.2f} | {min(walls):.2f} | {parts} |")
            print(rows[-1], file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="4k,8k", help="comma list of 4k, 8k or WxH")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="cpu: only to check this script")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=None, help="token rows per step (default: the device's)")
    ap.add_argument("--cache-bits", type=int, default=MergeConfig.cache_bits)
    ap.add_argument("--compile", action="store_true", help="also time the render under torch.compile")
    ap.add_argument("--e2e-size", default="4k", help="the merge bracket's size (4k, 8k or WxH)")
    ap.add_argument("--e2e-repeats", type=int, default=3)
    ap.add_argument("--no-record", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA GPU is available to torch: nothing measured, BENCHMARKS.md unchanged")
        return 0
    device = torch.device(args.device)
    model, manifest = load_weights(None)
    model = model.eval().to(device)
    sizes = [parse_size(s) for s in args.sizes.split(",")]

    head = [("| size | frames | model (median / best, fps) | render | fused (model + render) | "
             "peak MiB (fused / render) | frames MiB |"), "|---|---|---|---|---|---|---|"]
    rows = [row for size in sizes for row in on_device_rows(model, size, device, args)]
    hosted = [host_row(model, size, device, args) for size in sizes]
    devices = [args.device] if args.device == "cpu" else ["cuda", "cpu"]
    merged = end_to_end(parse_size(args.e2e_size), devices, args.e2e_repeats)

    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "no GPU (script check)"
    e2e = parse_size(args.e2e_size)
    text = "\n".join([
        (f"3 frames (-2/0/+2 EV), {manifest.get('variant')} weights, compute "
         f"{str(compute_dtype(device)).replace('torch.', '')}, cache {args.cache_bits} bits, chunk "
         f"{args.chunk or 'default'}; {args.warmup} warm-up and {args.repeats} measured runs each. "
         f"{gpu}, torch {torch.__version__}; host: {machine_description()}."),
        "", "Frames already on the device:", "", *head, *rows,
        "", "From host frames (upload, fused, download):", "",
        "| size | `fuse_ipl(device=...)` (median / best, fps; the last run's stages) |", "|---|---|", *hosted,
        "", (f"`uhdfuse merge --engine ipl` on a {e2e[0]}x{e2e[1]} JPEG bracket (hand-held, JPEG out), "
             f"{args.e2e_repeats} runs; stage seconds of the fastest:"), "",
        "| --device | median wall (s) | best (s) | stages (s) |", "|---|---:|---:|---|", *merged,
    ])
    print(text)
    if not args.no_record and device.type == "cuda":
        record_section("gpu", f"## IPL on a GPU\n\n`python benchmarks/gpu.py`, {date.today()}.\n\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
