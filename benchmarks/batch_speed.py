"""Whole-shoot speed: grouping 1,000 files from metadata, and brackets fused per minute.

    python benchmarks/batch_speed.py                 # dry run over 1,000 files; 4 x 4K brackets, 1 and 2 workers
    python benchmarks/batch_speed.py --brackets 2 --width 1920 --height 1080 --no-record   # quicker

1. Dry run: 1,000 small JPEGs with camera EXIF (333 brackets of 3 and a single),
   grouped by ``uhdfuse batch --dry-run --json`` as its own process (start-up included).
2. Throughput: ``--brackets`` brackets of 3 frames (16-bit TIFF, 3840x2160, a
   procedural scene with hand-held shake) fused by ``uhdfuse batch --engine mertens``
   with ``--workers 1`` and ``--workers 2``; brackets per minute = brackets / wall time
   x 60 (process start-up and worker spawn included).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, machine_description, record_section, run_measured

GEN_DRY = r"""
import sys, shutil, exiv2, numpy as np
from datetime import datetime, timedelta
from fractions import Fraction
from pathlib import Path
from PIL import Image
out, count = Path(sys.argv[1]), int(sys.argv[2])
t0 = datetime(2026, 11, 20, 10, 0, 0)
template = out / "template.jpg"
Image.fromarray(np.full((32, 48, 3), 128, np.uint8)).save(template, quality=80)
for k in range(count):
    path = out / f"IMG_{k:05d}.jpg"
    shutil.copyfile(template, path)
    bracket, pos = divmod(k, 3)
    bias = (0, -2, 2)[pos]
    when = t0 + timedelta(seconds=10 * bracket + pos)
    t = Fraction(2.0 ** bias / 60).limit_denominator(100000)
    img = exiv2.ImageFactory.open(str(path)); img.readMetadata(); exif = img.exifData()
    exif["Exif.Image.Make"] = "uhdfuse"; exif["Exif.Image.Model"] = "Bench"
    exif["Exif.Photo.DateTimeOriginal"] = when.strftime("%Y:%m:%d %H:%M:%S")
    exif["Exif.Photo.ExposureTime"] = f"{t.numerator}/{t.denominator}"
    exif["Exif.Photo.FNumber"] = "8/1"; exif["Exif.Photo.ISOSpeedRatings"] = "100"
    exif["Exif.Photo.ExposureBiasValue"] = f"{bias}/1"
    img.writeMetadata()
template.unlink()
"""

GEN_BRACKETS = r"""
import sys, exiv2
from datetime import datetime, timedelta
from pathlib import Path
from uhdfuse.synthetic import procedural_scene, render_bracket, write_bracket_files
out, n, w, h = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
scene = procedural_scene(h, w, seed=7)
for b in range(n):
    rendered = render_bracket(scene, (-2, 0, 2), seed=b, shake_px=4.0)
    for k, path in enumerate(write_bracket_files(out, rendered, "tiff", stem=f"b{b:02d}")):
        img = exiv2.ImageFactory.open(str(path)); img.readMetadata()  # one bracket a minute
        when = datetime(2026, 11, 20, 10, 0, 0) + timedelta(minutes=b, seconds=k)
        img.exifData()["Exif.Photo.DateTimeOriginal"] = when.strftime("%Y:%m:%d %H:%M:%S")
        img.writeMetadata()
"""


def _python(*args: str) -> list[str]:
    return [sys.executable, *args]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--brackets", type=int, default=4)
    parser.add_argument("--width", type=int, default=3840)
    parser.add_argument("--height", type=int, default=2160)
    parser.add_argument("--no-record", action="store_true", help="Print only; leave BENCHMARKS.md alone.")
    args = parser.parse_args()

    src = str(ROOT / "src")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])))
    work = Path(tempfile.mkdtemp(prefix="uhdfuse-batch-bench-"))
    try:
        dry = work / "dry"
        dry.mkdir()
        subprocess.run(_python("-c", GEN_DRY, str(dry), str(args.files)), check=True, env=env)
        start = time.perf_counter()
        proc = subprocess.run(
            _python("-m", "uhdfuse", "batch", str(dry), "--dry-run", "--json"),
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        dry_s = time.perf_counter() - start
        groups = [line for line in proc.stdout.splitlines() if line.strip()]
        n_brackets = sum('"kind": "bracket"' in g for g in groups)
        print(f"dry run: {args.files} files -> {len(groups)} groups ({n_brackets} brackets) in {dry_s:.2f} s")

        shoot = work / "shoot"
        shoot.mkdir()
        subprocess.run(
            _python("-c", GEN_BRACKETS, str(shoot), str(args.brackets), str(args.width), str(args.height)),
            check=True, env=env,
        )  # fmt: skip
        rows = []
        for workers in (1, 2):
            out = work / f"out{workers}"
            run = run_measured(
                _python(
                    "-m", "uhdfuse", "batch", str(shoot), "-o", str(out),
                    "--engine", "mertens", "--workers", str(workers), "--no-resume",
                ),
                env=env,
            )  # fmt: skip
            fused = len(list(out.glob("*.tif")))
            if fused != args.brackets:
                raise RuntimeError(f"expected {args.brackets} outputs, got {fused}")
            per_min = args.brackets / run.seconds * 60
            rows.append((workers, run.seconds, per_min))
            print(f"workers {workers}: {args.brackets} brackets in {run.seconds:.1f} s = {per_min:.2f} brackets/min")
            shutil.rmtree(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    body = "\n".join(
        [
            "## Batch: grouping and throughput (`benchmarks/batch_speed.py`)",
            "",
            f"Machine: {machine_description()}.",
            "",
            f"Dry run (`uhdfuse batch --dry-run --json`, own process): {args.files} JPEGs with EXIF "
            f"-> {len(groups)} groups ({n_brackets} brackets) in **{dry_s:.2f} s**.",
            "",
            f"Throughput: {args.brackets} brackets of 3 x {args.width}x{args.height} 16-bit TIFF "
            "(hand-held shake, Mertens, 16-bit TIFF out), wall time including start-up:",
            "",
            "| workers | wall time (s) | brackets / minute |",
            "|---:|---:|---:|",
            *(f"| {w} | {s:.1f} | {m:.2f} |" for w, s, m in rows),
        ]
    )
    if not args.no_record:
        record_section("batch-speed", body)
    print(body)


if __name__ == "__main__":
    main()
