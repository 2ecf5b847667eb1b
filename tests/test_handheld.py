"""Registration of generated brackets (uhdfuse.synthetic.handheld): a tripod bracket
comes out exactly untouched; hand-held ones, with unknown tone curves, estimated EVs
and something moving, register to a fraction of a pixel; wide ones register or are
refused, naming the frame. The accuracy over many cases is measured by
benchmarks/align.py (seeds 0..N-1); these seeds are others."""

from __future__ import annotations

import numpy as np
import pytest

from uhdfuse.align import align_bracket
from uhdfuse.config import AlignConfig, AlignModel
from uhdfuse.errors import AlignmentFailed
from uhdfuse.synthetic.handheld import SIZE, corner_error, make_case


@pytest.mark.parametrize("seed", range(3))
def test_tripod_bracket_is_exactly_the_identity(seed: int) -> None:
    bracket, _ = make_case(100 + seed, still=True)
    aligned = align_bracket(bracket, AlignConfig())
    assert aligned.model == AlignModel.NONE
    for M in aligned.transforms:
        np.testing.assert_array_equal(M, np.eye(3))
    assert aligned.crop == (0, 0, SIZE[1], SIZE[0])
    for image, frame in zip(aligned.images, bracket.frames):
        np.testing.assert_array_equal(image, frame.image)


# Known misses (issue #13, open): the brightest frame of an S-curve bracket 2.6 EV
# from the reference, whose highlights the curve squeezes into a few codes, comes
# out 0.5-1.1 px off. strict: the day they pass, this list must shrink.
_S_CURVE_BIAS = pytest.mark.xfail(strict=True, reason="S-curve bright frame biased by 0.5-1.1 px (#13)")


@pytest.mark.parametrize(
    "seed", [pytest.param(300, marks=_S_CURVE_BIAS), 301, 302, 303, 304, pytest.param(305, marks=_S_CURVE_BIAS), 306, 307]
)
def test_handheld_bracket_registers_within_half_a_pixel(seed: int) -> None:
    bracket, truth = make_case(seed)
    aligned = align_bracket(bracket, AlignConfig())
    errors = [corner_error(M, T) for M, T in zip(aligned.transforms, truth)]
    assert max(errors) <= 0.5, errors


def test_crop_loses_no_more_than_the_shake_needs() -> None:
    # The crop is the largest rectangle inside what every frame covers under the
    # *true* motion, give or take what a half-pixel registration moves (2 px).
    from uhdfuse.align.checks import largest_rectangle

    bracket, truth = make_case(303)
    aligned = align_bracket(bracket, AlignConfig())
    others = [T for i, T in enumerate(truth) if i != bracket.reference]
    _, _, w, h = largest_rectangle(others, (SIZE[1], SIZE[0]))
    assert aligned.crop[2] >= w - 2 and aligned.crop[3] >= h - 2
    assert aligned.crop[2] < SIZE[1]  # the shake does need a crop


@pytest.mark.parametrize("seed", range(4))
def test_wide_bracket_registers_or_names_the_frame(seed: int) -> None:
    # 1 to 4 EV between frames: the outer ones mostly clipped or black. Where the
    # scene allows it the frames register; where it does not, the error names the
    # frame: a misregistered frame by more than a few pixels is never returned.
    bracket, truth = make_case(seed + 400, wide=True)
    try:
        aligned = align_bracket(bracket, AlignConfig())
    except AlignmentFailed as exc:
        assert exc.path is not None and exc.path.name.startswith("f")
        return
    assert max(corner_error(M, T) for M, T in zip(aligned.transforms, truth)) <= 2.0
