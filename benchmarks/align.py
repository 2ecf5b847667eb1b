"""Registration of generated hand-held brackets: success, corner error and time, per tool.

    python benchmarks/align.py [--cases 24] [--wide 12] [--uhd 3] [--no-record]

Cases come from uhdfuse.synthetic.handheld, seeds 0..N-1, which no test uses: 3 or
5 frames spanning +-2 to +-3 EV, unknown tone curves (sRGB, gammas, S-curves) and
8-bit quantisation, EVs 20 % off, shake up to 3 % of the width and 1.5 degrees
with mild perspective, an object of up to 15 % of the frame moving. The wide set
has 1 to 4 EV between frames (up to +-8 EV: the outer frames mostly clipped or
black), where refusing a frame the scene does not let anyone place is right and
placing it wrongly is not. A tool *succeeds* on a case when every frame's corner
error is at most 0.5 px; refusals and errors above 2 px are counted apart and
listed. uhdfuse runs with its defaults (what ``uhdfuse merge`` does: the align
stage, warp and crop included); OpenCV's AlignMTB (translation only, Ward's
median-threshold bitmaps) runs on the frames' 8-bit sRGB encoding.
align_image_stack is not measured here: it is not installed on the development
machine (quality.py runs it, with enfuse, where it is). Times at UHD (3840x2160, 3 frames) are
the best of five runs (this machine's timings vary by up to 2x from run to run), hand-held and tripod brackets apart.
"""

from __future__ import annotations

import argparse
import shutil
import time
from collections.abc import Callable

import cv2
import numpy as np
from _common import machine_description, record_section

from uhdfuse.align import align_bracket
from uhdfuse.colour import srgb_encode
from uhdfuse.config import AlignConfig
from uhdfuse.errors import AlignmentFailed
from uhdfuse.synthetic.handheld import SIZE, corner_error, make_case
from uhdfuse.types import Bracket

TOLERANCE_PX = 0.5
WRONG_PX = 2.0
UHD = (2160, 3840)

Register = Callable[[Bracket], list[np.ndarray]]


def uhdfuse_transforms(bracket: Bracket) -> list[np.ndarray]:
    return list(align_bracket(bracket, AlignConfig()).transforms)


def mtb_transforms(bracket: Bracket) -> list[np.ndarray]:
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


def evaluate(name: str, register: Register, cases: list, size: tuple[int, int]) -> dict:
    errors, failures, seconds, refused, wrong = [], [], 0.0, 0, 0
    for seed, (bracket, truth) in cases:
        start = time.perf_counter()
        try:
            found = register(bracket)
        except AlignmentFailed as exc:
            seconds += time.perf_counter() - start
            refused += 1
            failures.append(f"seed {seed}: refused ({exc})")
            continue
        seconds += time.perf_counter() - start
        worst = max(corner_error(M, T, size) for M, T in zip(found, truth))
        errors.append(worst)
        if worst > WRONG_PX:
            wrong += 1
        if worst > TOLERANCE_PX:
            failures.append(f"seed {seed}: corner error {worst:.2f} px")
    ok = sum(e <= TOLERANCE_PX for e in errors)
    return {"tool": name, "ok": ok, "n": len(cases), "refused": refused, "wrong": wrong,
            "median": float(np.median(errors)) if errors else float("nan"),
            "seconds": seconds / max(1, len(cases)), "failures": failures}  # fmt: skip


def best_time(register: Register, bracket: Bracket, runs: int = 5) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        register(bracket)
        best = min(best, time.perf_counter() - start)
    return best


def table(title: str, rows: list[dict]) -> list[str]:
    lines = [f"**{title}**", "",
             f"| tool | within {TOLERANCE_PX} px | refused | off by > {WRONG_PX:g} px | median worst corner error (px) "
             "| seconds per bracket |", "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    lines += [f"| {r['tool']} | {r['ok']} of {r['n']} | {r['refused']} | {r['wrong']} | {r['median']:.2f} | "
              f"{r['seconds']:.2f} |" for r in rows]  # fmt: skip
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=24, help="Hand-held brackets, +-2 to +-3 EV (seeds 0..N-1).")
    parser.add_argument("--wide", type=int, default=12, help="Wide brackets, 1 to 4 EV steps (seeds 0..N-1).")
    parser.add_argument("--uhd", type=int, default=3, help="UHD 3-frame brackets timed (and their errors).")
    parser.add_argument("--no-record", action="store_true", help="Print only; leave BENCHMARKS.md alone.")
    args = parser.parse_args()
    tools: list[tuple[str, Register]] = [("uhdfuse (default)", uhdfuse_transforms), ("OpenCV AlignMTB", mtb_transforms)]
    h, w = SIZE
    lines: list[str] = []
    failures: list[str] = []
    for title, wide, n in ((f"{args.cases} hand-held brackets, {w}x{h}, +-2 to +-3 EV", False, args.cases),
                           (f"{args.wide} wide brackets, {w}x{h}, 1 to 4 EV steps", True, args.wide)):  # fmt: skip
        cases = [(seed, make_case(seed, wide=wide)) for seed in range(n)]
        rows = [evaluate(name, register, cases, SIZE) for name, register in tools]
        lines += table(title, rows) + [""]
        failures += [f"- {title}, {r['tool']}, {f}" for r in rows for f in r["failures"]]
        print("\n".join(table(title, rows)), flush=True)

    uhd_rows = []
    seeds = iter(range(10_000))
    for _ in range(args.uhd):
        # The speed target is for 3 frames: the next seeds that draw 3.
        seed = next(s for s in seeds if len(make_case(s, size=(40, 60))[0].frames) == 3)
        moving, truth = make_case(seed, size=UHD)
        still, _ = make_case(seed, size=UHD, still=True)
        for name, register in tools:
            try:
                worst = max(corner_error(M, T, UHD) for M, T in zip(register(moving), truth))
            except AlignmentFailed as exc:
                worst = float("nan")
                failures.append(f"- UHD seed {seed}, {name}: refused ({exc})")
            uhd_rows.append((name, len(moving.frames), best_time(register, moving), best_time(register, still), worst))
        print(uhd_rows[-2:], flush=True)
    lines += [f"**UHD timing** ({UHD[1]}x{UHD[0]}, best of 5 runs, the align stage: registration, warp and crop)", "",
              "| tool | frames | hand-held (s) | tripod (s) | worst corner error (px) |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {name} | {n} | {moving:.2f} | {still:.2f} | {err:.2f} |" for name, n, moving, still, err in uhd_rows]
    if shutil.which("align_image_stack") is None:
        lines += ["", "align_image_stack: not installed on this machine, so not measured."]
    body = "\n".join(lines) + "\n\nFailures:\n\n" + ("\n".join(failures) or "- none") + "\n"
    print(body)
    if not args.no_record:
        record_section("align", "## Registration of generated hand-held brackets\n\n"
                       f"`python benchmarks/align.py --cases {args.cases} --wide {args.wide} --uhd {args.uhd}` on "
                       f"{machine_description()}.\n\n" + body)  # fmt: skip


if __name__ == "__main__":
    main()
