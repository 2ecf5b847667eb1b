"""Wall time and peak memory of fusing a 4K 3-frame bracket: uhdfuse (IPL and Mertens) vs enfuse vs OpenCV.

    python benchmarks/merge_speed.py            # 3840x2160, 3 runs each, table into BENCHMARKS.md

Every tool runs as its own process on the same generated 16-bit TIFF bracket (a
procedural scene, hand-held shake of a few pixels), doing the same job: register
the frames, fuse them, write a 16-bit TIFF. Peers:

* ``align_image_stack -a`` + ``enfuse`` (Hugin), when installed (Debian: hugin-tools, enfuse);
* OpenCV ``AlignMTB`` + ``MergeMertens`` (8-bit input, as OpenCV's alignment requires).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

from _common import machine_description, record_section, run_measured

OPENCV_SCRIPT = r"""
import sys, cv2, numpy as np
paths, out = sys.argv[1:-1], sys.argv[-1]
imgs = [cv2.imread(p, cv2.IMREAD_UNCHANGED) for p in paths]
imgs8 = [(i / 257).round().astype(np.uint8) if i.dtype == np.uint16 else i for i in imgs]
cv2.createAlignMTB().process(imgs8, imgs8)
fused = cv2.createMergeMertens().process(imgs8)
cv2.imwrite(out, np.clip(fused * 65535, 0, 65535).astype(np.uint16))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=3840)
    parser.add_argument("--height", type=int, default=2160)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-record", action="store_true", help="Print only; leave BENCHMARKS.md alone.")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="uhdfuse-bench-"))
    try:
        # Rendered in a child process: a child's peak RSS on Linux starts from its parent's
        # at fork, so the parent must stay small for the peers' figures to be their own.
        render = (
            "import sys; from pathlib import Path; from uhdfuse.synthetic import write_example_bracket; "
            "write_example_bracket(Path(sys.argv[1]), width=int(sys.argv[2]), height=int(sys.argv[3]), "
            "formats=('tiff',), shake_px=4.0, seed=1)"
        )
        subprocess.run([sys.executable, "-c", render, str(work / "in"), str(args.width), str(args.height)], check=True)
        frames = sorted((work / "in" / "tiff").glob("*.tif"))
        inputs = [str(p) for p in frames]
        tools: dict[str, list[list[str]]] = {
            f"uhdfuse merge --engine {engine}": [
                [sys.executable, "-m", "uhdfuse", "merge", *inputs, "-o", str(work / f"uhdfuse-{engine}.tif"),
                 "--engine", engine, "--force"]
            ]
            for engine in ("ipl", "mertens")
        }
        tools["OpenCV AlignMTB + MergeMertens"] = [
            [sys.executable, "-c", OPENCV_SCRIPT, *inputs, str(work / "opencv.tif")]
        ]
        if shutil.which("align_image_stack") and shutil.which("enfuse"):
            tools["align_image_stack + enfuse"] = [
                ["align_image_stack", "-a", str(work / "aligned_"), *inputs],
                ["enfuse", "-o", str(work / "enfuse.tif"), "--depth=16"]
                + [str(work / f"aligned_{i:04d}.tif") for i in range(len(inputs))],
            ]
        rows = []
        for name, steps in tools.items():
            times, peaks = [], []
            for _ in range(args.repeats):
                runs = [run_measured(step) for step in steps]
                times.append(sum(r.seconds for r in runs))
                peaks.append(max(r.peak_rss_mib for r in runs))
            rows.append((name, statistics.median(times), min(times), max(peaks)))
            print(f"{name}: {statistics.median(times):.2f} s", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    table = [
        (f"3 frames of {args.width}x{args.height} 16-bit TIFF (hand-held, ~4 px shake) -> aligned, fused, "
         f"16-bit TIFF; median of {args.repeats} runs. Machine: {machine_description()}."),
        "",
        "| tool | median wall (s) | best (s) | peak RSS (MiB) |",
        "|---|---:|---:|---:|",
        *[f"| {n} | {med:.2f} | {best:.2f} | {rss:.0f} |" for n, med, best, rss in rows],
    ]
    text = "\n".join(table)
    print(text)
    if not args.no_record:
        record_section("merge_speed", f"## End-to-end merge, {args.width}x{args.height}, 3 frames\n\n"
                       f"`python benchmarks/merge_speed.py`, {date.today()}.\n\n" + text)


if __name__ == "__main__":
    main()
