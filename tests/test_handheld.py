"""Registration of generated brackets (uhdfuse.synthetic.handheld): a tripod bracket
comes out exactly untouched. Hand-held accuracy is measured by benchmarks/align.py."""

from __future__ import annotations

import numpy as np
import pytest

from uhdfuse.align import align_bracket
from uhdfuse.config import AlignConfig, AlignModel
from uhdfuse.synthetic.handheld import SIZE, make_case


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
