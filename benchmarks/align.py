"""Registration on generated hand-held brackets: success, corner error and time, per tool.

    python benchmarks/align.py [--cases 12] [--no-record]

Cases come from uhdfuse.synthetic.handheld (3 or 5 frames 1 to 3 EV apart, unknown
tone curves, shake up to 3 % of the width and 1.5 degrees with mild perspective, a
moving object), seeds 0..N-1, which no test or tuning uses. A tool *succeeds* on a
case when every frame's corner error is at most 0.5 px; a refusal is counted as a
failure and listed. uhdfuse runs with its defaults (what `uhdfuse merge` does);
OpenCV's AlignMTB (translation only, the median-threshold bitmaps of Ward 2003)
runs on the frames' 8-bit sRGB encoding. align_image_stack is run when installed.
"""

from __future__ import annotations

import argparse
import shutil
import time

import cv2
import numpy as np
from _common import machine_description, record_section

from uhdfuse.align import align_bracket
from uhdfuse.colour import srgb_encode
from uhdfuse.config import AlignConfig
from uhdfuse.errors import AlignmentFailed
from uhdfuse.synthetic.handheld import corner_error, make_case

TOLERANCE_PX = 0.5


def uhdfuse_transforms(bracket) -> list[np.ndarray]:  # noqa: ANN001 - Bracket
    return list(align_bracket(bracket, AlignConfig()).transforms)


def mtb_transforms(bracket) -> list[np.ndarray]:  # noqa: ANN001 - Bracket
    """AlignMTB's shifts as matrices: frame content at reference pixel x is at x - shift."""
    frames = [(srgb_encode(np.clip(f.image, 0, 1)) * 255).round().astype(np.uint8) for f in bracket.frames]
    mtb = cv2.createAlignMTB()
    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    ref = grey[bracket.reference]
    out = []
    for g in grey:
        dx, dy = mtb.calculateShift(ref, g)
        M = np.eye(3)
        M[:2, 2] = (-dx, -dy)
        out.append(M)
    return out


def evaluate(name: str, register, cases: list) -> dict:  # noqa: ANN001
    errors, failures, seconds = [], [], 0.0
    for seed, (bracket, truth) in cases:
        start = time.perf_counter()
        try:
            found = register(bracket)
        except AlignmentFailed as exc:
            failures.append(f"seed {seed}: refused ({exc})")
            seconds += time.perf_counter() - start
            continue
        seconds += time.perf_counter() - start
        worst = max(corner_error(M, T) for M, T in zip(found, truth))
        errors.append(worst)
        if worst > TOLERANCE_PX:
            failures.append(f"seed {seed}: corner error {worst:.2f} px")
    ok = len(cases) - len(failures)
    return {"tool": name, "ok": ok, "n": len(cases), "median": float(np.median(errors)) if errors else float("nan"),
            "seconds": seconds / len(cases), "failures": failures}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=12, help="Generated brackets (seeds 0..N-1).")
    parser.add_argument("--no-record", action="store_true", help="Print only; leave BENCHMARKS.md alone.")
    args = parser.parse_args()
    cases = [(seed, make_case(seed)) for seed in range(args.cases)]
    rows = [evaluate("uhdfuse (default)", uhdfuse_transforms, cases), evaluate("OpenCV AlignMTB", mtb_transforms, cases)]
    lines = [
        f"| tool | within {TOLERANCE_PX} px | median worst corner error (px) | seconds per bracket |",
        "|---|---|---|---|",
        *(f"| {r['tool']} | {r['ok']} of {r['n']} | {r['median']:.2f} | {r['seconds']:.2f} |" for r in rows),
    ]
    if shutil.which("align_image_stack") is None:
        lines.append("| align_image_stack | not installed on this machine | | |")
    failures = [f"- {r['tool']}, {f}" for r in rows for f in r["failures"]]
    body = "\n".join(lines) + "\n\nFailures:\n\n" + ("\n".join(failures) or "- none") + "\n"
    print(body)
    if not args.no_record:
        record_section("align", f"## Registration of {args.cases} generated hand-held brackets\n\n"
                       f"`python benchmarks/align.py --cases {args.cases}` on {machine_description()}.\n\n" + body)  # fmt: skip


if __name__ == "__main__":
    main()
