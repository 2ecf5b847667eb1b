"""IPL model-stage speed and memory, 3 frames, random weights of the shipped size.

    PYTHONPATH=src python benchmarks/ipl_speed.py                       # CPU: 1080p, 4k, 8k
    PYTHONPATH=src python benchmarks/ipl_speed.py --sizes 1080p,4k,8k,16k --device cuda

Prints markdown tables: per size the model stage's time (the token network,
streamed: min and median of the repeats, after a warm-up run), fps, peak memory
(``model_peak_bytes``: CUDA max allocated; CPU resident-set high-water mark, see
uhdfuse.runtime.device), slices, and the median time of the render stage that
follows it (full-resolution Mertens-pyramid blend on the CPU, not in the fps);
then the attention-cache bytes at 16/8/4 bits at 4K. The model-stage time
includes host->device copies of the input slices and device->host copies of the
maps; it excludes loading frames and allocating the output.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time

import numpy as np
import torch

from uhdfuse.config import CACHE_BITS, Device, MergeConfig, field_default
from uhdfuse.nn.ipl import build, count_parameters, ipl_base
from uhdfuse.runtime.device import select_device
from uhdfuse.runtime.engine import fuse_ipl
from uhdfuse.runtime.stream import step_tokens

SIZES = {"1080p": (1080, 1920), "4k": (2160, 3840), "8k": (4320, 7680), "16k": (8640, 15360)}


def bracket(H: int, W: int, seed: int = 0) -> tuple[np.ndarray, list[float], int]:
    """3 frames 2 EV apart from a tiled random scene (cheap to make at 16K)."""
    rng = np.random.default_rng(seed)
    tile = (rng.random((256, 256, 3), dtype=np.float32) * 2.0) ** 2
    scene = np.tile(tile, (-(-H // 256), -(-W // 256), 1))[:H, :W]
    images = np.empty((3, H, W, 3), np.float32)
    for i, e in enumerate((-2.0, 0.0, 2.0)):
        np.multiply(scene, 2.0**e / 4.0, out=images[i])
        np.clip(images[i], 0, 1, out=images[i])
    return images, [-2.0, 0.0, 2.0], 1


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1080p,4k,8k", help="comma list of " + ",".join(SIZES))
    ap.add_argument("--device", default=Device.CPU.value, choices=[d.value for d in Device])
    ap.add_argument("--repeats", type=int, default=3, help="measured runs per size, after a warm-up run")
    ap.add_argument("--chunk", type=int, default=None, help="token rows per step (default: the model's)")
    ap.add_argument("--cache-bits", type=int, default=field_default(MergeConfig, "cache_bits"), choices=CACHE_BITS)
    args = ap.parse_args(argv)
    device = select_device(args.device)
    repeats = max(1, args.repeats)
    model = build(ipl_base(), seed=0).eval()
    step = args.chunk or f"auto (~{step_tokens(device.type)} tokens per step)"
    print(f"machine: {machine(device)}; model ipl_base ({count_parameters(model)} parameters, random "
          f"weights), 3 frames, cache {args.cache_bits} bits, chunk {step}\n")
    print("| size | pixels | model time min (s) | model time median (s) | fps | model peak median (min-max, MiB) | "
          "slices | device | dtype | render median (s) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    peaks = {}
    for name in args.sizes.split(","):
        H, W = SIZES[name.strip().lower()]
        images, ev, ref = bracket(H, W)
        runs = []
        for i in range(repeats + 1):  # the first run warms up (torch's one-time set-up, kernels)
            _, stats = fuse_ipl(images, ev, ref, device=str(device), chunk=args.chunk,
                                cache_bits=args.cache_bits, model=model)
            if i > 0:
                runs.append(stats)
        times = [s.model_seconds for s in runs]
        # the median: on the CPU the high-water mark varies by ~1-2 MiB between runs (docs/ipl.md)
        mib = [(s.model_peak_bytes or 0) / 2**20 for s in runs]
        peaks[name] = statistics.median(mib)
        print(f"| {name} | {W}x{H} | {min(times):.3f} | {statistics.median(times):.3f} | "
              f"{1 / statistics.median(times):.1f} | {peaks[name]:.1f} ({min(mib):.1f}-{max(mib):.1f}) | "
              f"{runs[0].slices} | {runs[0].device} | {runs[0].dtype} | "
              f"{statistics.median(s.render_seconds for s in runs):.3f} |", flush=True)
        del images
    if "4k" in peaks and "16k" in peaks and peaks["4k"]:
        print(f"\nmedian peak memory 16K / 4K: {peaks['16k'] / peaks['4k']:.3f}")
    if "4k" in peaks and "8k" in peaks and peaks["4k"]:
        print(f"median peak memory 8K / 4K: {peaks['8k'] / peaks['4k']:.3f}")
    print("\n| cache bits | cache bytes (4K, all blocks) |")
    print("|---|---|")
    images, ev, ref = bracket(*SIZES["4k"])
    for bits in CACHE_BITS:
        _, stats = fuse_ipl(images, ev, ref, device=str(device), chunk=args.chunk, cache_bits=bits, model=model)
        print(f"| {bits} | {stats.cache_bytes} |", flush=True)
    return 0


if __name__ == "__main__":
    t0 = time.time()
    code = main()
    print(f"\n(total {time.time() - t0:.0f} s)", file=sys.stderr)
    sys.exit(code)
