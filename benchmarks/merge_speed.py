"""Wall time, stage times and peak memory of `uhdfuse merge` on 4K and 24 MP JPEG brackets, peers in the same run.

    python benchmarks/merge_speed.py                 # 4K and 24 MP, best of 2, table into BENCHMARKS.md
    python benchmarks/merge_speed.py --sizes 4k --repeats 3 --no-record

Every tool runs as its own process (start-up included) on the same generated
bracket: 3 hand-held JPEGs with EXIF (EV -2, 0, +2, a few pixels of shake), doing
the same job: register the frames, fuse them, write a 16-bit TIFF. uhdfuse runs
as a user runs it: the default command (``--engine ipl``), and ``--engine
mertens``; its stage times are those of its ``--json`` report. Peers:

* OpenCV ``AlignMTB`` + ``MergeMertens`` + a 16-bit TIFF, the lines a Python user would write;
* ``align_image_stack -a`` + ``enfuse`` (Hugin), when installed.

A failed run is counted and shown in the table, never dropped.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from _common import machine_description, record_section, run_measured

SIZES = {"4k": (3840, 2160), "24mp": (6000, 4000)}

OPENCV_SCRIPT = r"""
import sys, cv2, numpy as np
paths, out = sys.argv[1:-1], sys.argv[-1]
imgs = [cv2.imread(p) for p in paths]
cv2.createAlignMTB().process(imgs, imgs)
fused = cv2.createMergeMertens().process(imgs)
cv2.imwrite(out, np.clip(fused * 65535, 0, 65535).astype(np.uint16))
"""


@dataclass
class Row:
    tool: str
    times: list[float] = field(default_factory=list)
    peaks: list[float] = field(default_factory=list)
    stages: dict[str, float] = field(default_factory=dict)  # of the best run
    failures: list[str] = field(default_factory=list)


def _make_bracket(folder: Path, width: int, height: int) -> list[str]:
    # rendered in a child process: a child's peak RSS starts from its parent's at fork
    render = (
        "import sys; from pathlib import Path; from uhdfuse.synthetic import write_example_bracket; "
        "write_example_bracket(Path(sys.argv[1]), width=int(sys.argv[2]), height=int(sys.argv[3]), "
        "formats=('jpeg',), shake_px=6.0, seed=1)"
    )
    subprocess.run([sys.executable, "-c", render, str(folder), str(width), str(height)], check=True)
    return [str(p) for p in sorted((folder / "jpeg").glob("*.jpg"))]


def _tools(inputs: list[str], work: Path) -> dict[str, list[list[str]]]:
    tools = {
        f"uhdfuse merge{flag}": [[sys.executable, "-m", "uhdfuse", "merge", *inputs, "-o", str(work / "u.tif"),
                                  "--force", "--json", *flag.split()]]
        for flag in ("", " --engine mertens")
    }  # fmt: skip
    tools["OpenCV AlignMTB + MergeMertens"] = [[sys.executable, "-c", OPENCV_SCRIPT, *inputs, str(work / "cv.tif")]]
    if shutil.which("align_image_stack") and shutil.which("enfuse"):
        tools["align_image_stack + enfuse"] = [
            ["align_image_stack", "-a", str(work / "aligned_"), *inputs],
            ["enfuse", "-o", str(work / "enfuse.tif"), "--depth=16", *(str(work / f"aligned_{i:04d}.tif") for i in range(len(inputs)))],
        ]  # fmt: skip
    return tools


def _stage_times(cmd: list[str]) -> dict[str, float]:
    """The ``--json`` report's timings of one more run of a uhdfuse command."""
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)["timings"]


def measure(size: str, repeats: int) -> tuple[list[Row], str]:
    width, height = SIZES[size]
    work = Path(tempfile.mkdtemp(prefix="uhdfuse-bench-"))
    try:
        inputs = _make_bracket(work / "in", width, height)
        rows = []
        for name, steps in _tools(inputs, work).items():
            row = Row(name)
            for _ in range(repeats):
                try:
                    runs = [run_measured(step) for step in steps]
                except RuntimeError as exc:
                    row.failures.append(str(exc).splitlines()[-1][:200])
                    continue
                row.times.append(sum(r.seconds for r in runs))
                row.peaks.append(max(r.peak_rss_mib for r in runs))
            if name.startswith("uhdfuse") and row.times:
                row.stages = _stage_times(steps[0])
            rows.append(row)
            best = f"{min(row.times):.2f} s" if row.times else "failed"
            print(f"{size} {name}: {best}", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows, f"{width}x{height}"


def table(size: str, rows: list[Row], repeats: int) -> list[str]:
    enfuse = next((min(r.times) for r in rows if r.tool.startswith("align_image_stack") and r.times), None)
    lines = [
        f"**{size}**, best of {repeats} (process start included); stages from `--json` of one more run:",
        "",
        "| tool | wall (s) | / enfuse | peak RSS (MiB) | read | align | fuse (model + render) | write | failed runs |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        s = r.stages
        cells = [
            r.tool,
            f"{min(r.times):.2f}" if r.times else "failed",
            f"{min(r.times) / enfuse:.2f}" if r.times and enfuse else "n/a",
            f"{max(r.peaks):.0f}" if r.peaks else "",
            *(f"{s[k]:.2f}" if k in s else "" for k in ("read", "align")),
            (f"{s['fuse']:.2f}" + (f" ({s['fuse_model']:.2f} + {s['fuse_render']:.2f})" if "fuse_model" in s else ""))
            if "fuse" in s else "",
            f"{s['write']:.2f}" if "write" in s else "",
            f"{len(r.failures)}: {r.failures[0]}" if r.failures else "0",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="4k,24mp", help=f"comma-separated, of {', '.join(SIZES)}")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-record", action="store_true", help="Print only; leave BENCHMARKS.md alone.")
    args = parser.parse_args()
    sizes = [s.strip().lower() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        parser.error(f"unknown size {unknown[0]!r}; expected {', '.join(SIZES)}")

    lines = [f"3 hand-held JPEGs with EXIF (EV -2, 0, +2) -> registered, fused, 16-bit TIFF. Machine: {machine_description()}."]
    if not (shutil.which("align_image_stack") and shutil.which("enfuse")):
        lines.append("align_image_stack + enfuse are not installed on this machine: no enfuse column.")
    for size in sizes:
        rows, pixels = measure(size, args.repeats)
        lines += ["", *table(f"{pixels} ({size})", rows, args.repeats)]
    text = "\n".join(lines)
    print(text)
    if not args.no_record:
        record_section("merge_speed", "## End-to-end merge\n\n" f"`python benchmarks/merge_speed.py`, {date.today()}.\n\n" + text)


if __name__ == "__main__":
    main()
