"""Relative exposures and the reference frame: what decides which pixels a fusion trusts."""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from uhdfuse.errors import InconsistentBracket, UsageError
from uhdfuse.exposure import build_bracket, estimate_relative_ev
from uhdfuse.types import ExposureInfo, Frame


def _scene(h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    """Linear radiance spanning ~12 stops with texture."""
    rng = np.random.default_rng(seed)
    x = np.linspace(-6, 6, w, dtype=np.float32)
    ramp = np.exp2(x)[None, :, None] * np.ones((h, 1, 3), np.float32)
    texture = 1 + 0.3 * rng.random((h, w, 1), dtype=np.float32)
    tint = np.array([1.0, 0.9, 0.7], np.float32)
    return (ramp * texture * tint * 0.05).astype(np.float32)


def _frame(radiance: np.ndarray, ev: float, name: str, exposure: ExposureInfo | None = None) -> Frame:
    image = np.clip(radiance * 2.0**ev, 0, 1).astype(np.float32)
    return Frame(Path(name), image, "display", 8, exposure or ExposureInfo())


def test_pixel_ev_estimate_is_within_a_tenth_of_a_stop() -> None:
    scene = _scene()
    for true_ev in (1.0, 2.0, 3.0):
        est = estimate_relative_ev(np.clip(scene, 0, 1), np.clip(scene * 2**true_ev, 0, 1))
        assert est is not None and abs(est - true_ev) < 0.1


def test_frames_are_sorted_by_exif_exposure_and_middle_is_reference() -> None:
    scene = _scene()
    frames = [
        _frame(scene, 0, "b.jpg", ExposureInfo(1 / 60, 8, 100)),
        _frame(scene, -2, "a.jpg", ExposureInfo(1 / 240, 8, 100)),
        _frame(scene, 2, "c.jpg", ExposureInfo(1 / 15, 8, 100)),
    ]
    bracket = build_bracket(frames)
    assert [f.path.name for f in bracket.frames] == ["a.jpg", "b.jpg", "c.jpg"]
    assert bracket.ev_source == "exif"
    assert bracket.reference == 1
    np.testing.assert_allclose(bracket.ev, (-2, 0, 2), atol=1e-6)


def test_missing_exif_falls_back_to_pixels_with_a_warning() -> None:
    scene = _scene()
    frames = [_frame(scene, e, f"{i}.png") for i, e in enumerate((1.0, -1.0, 0.0))]
    bracket = build_bracket(frames)
    assert any("estimated from the pixels" in n for n in bracket.warnings), bracket.warnings
    assert bracket.ev_source == "pixels"
    np.testing.assert_allclose(bracket.ev, (-1, 0, 1), atol=0.1)
    assert [f.path.name for f in bracket.frames] == ["1.png", "2.png", "0.png"]


def test_contradictory_exif_is_overruled_by_pixels() -> None:
    scene = _scene()
    same = ExposureInfo(1 / 60, 8, 100)  # a camera that wrote the same EXIF on every frame
    frames = [_frame(scene, e, f"{i}.jpg", same) for i, e in enumerate((-2.0, 0.0, 2.0))]
    bracket = build_bracket(frames)
    assert any("contradicts" in n for n in bracket.warnings), bracket.warnings
    np.testing.assert_allclose(bracket.ev, (-2, 0, 2), atol=0.1)


def test_user_ev_wins_and_is_checked() -> None:
    scene = _scene()
    frames = [_frame(scene, e, f"{i}.jpg") for i, e in enumerate((0.0, 2.0))]
    bracket = build_bracket(frames, ev=(0.0, 2.0), reference=0)
    assert bracket.ev_source == "user" and bracket.ev == (0.0, 2.0)
    with pytest.raises(UsageError, match="2 frames"):
        build_bracket(frames, ev=(0.0, 1.0, 2.0))


def test_reference_by_name_and_out_of_range() -> None:
    scene = _scene()
    frames = [_frame(scene, e, f"f{i}.jpg", ExposureInfo(2.0**e)) for i, e in enumerate((-1.0, 0.0, 1.0))]
    assert build_bracket(frames, reference="f2.jpg").reference == 2
    with pytest.raises(UsageError):
        build_bracket(frames, reference=3)
    with pytest.raises(UsageError, match="not one of"):
        build_bracket(frames, reference="nope.jpg")


def test_even_count_picks_the_better_exposed_middle_frame() -> None:
    scene = _scene() * 0.02  # a dark scene: the brighter of the middle two is better exposed
    frames = [_frame(scene, e, f"{i}.jpg", ExposureInfo(2.0**e)) for i, e in enumerate((0.0, 2.0, 4.0, 6.0))]
    assert build_bracket(frames).reference == 2


def test_inconsistent_brackets_are_refused_naming_the_file() -> None:
    scene = _scene()
    a = _frame(scene, 0, "a.jpg")
    with pytest.raises(InconsistentBracket, match="at least 2"):
        build_bracket([a])
    b = _frame(_scene(64, 64), 1, "b.jpg")
    with pytest.raises(InconsistentBracket, match="b.jpg.*differs"):
        build_bracket([a, b])


def test_same_exposure_warning_quotes_evs_relative_to_the_reference() -> None:
    # absolute log2 exposures (-8.2 ...) must not leak into a message next to a table of relative EVs
    scene = _scene()
    frames = [_frame(scene, e, f"{i}.jpg") for i, e in enumerate((-4.0, -4.0, -2.0, 0.0, 2.0))]
    bracket = build_bracket(frames, ev=(-12.0, -12.0, -10.0, -8.0, -6.0), reference=3)
    assert bracket.ev[0] == bracket.ev[1] == -4.0
    notes = list(bracket.warnings)
    assert any("same exposure (EV -4.00)" in n for n in notes), notes


def test_notes_are_returned_read_notes_first_each_once() -> None:
    scene = _scene()
    frames = [_frame(scene, e, f"{i}.png") for i, e in enumerate((1.0, -1.0, 0.0))]
    frames[0] = replace(frames[0], notes=("0.png: JPEG end marker missing",))
    frames[2] = replace(frames[2], notes=("0.png: JPEG end marker missing", "2.png: read leniently"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # notes are data, never warnings
        bracket = build_bracket(frames)
    assert bracket.warnings[:2] == ("0.png: JPEG end marker missing", "2.png: read leniently")
    assert len(bracket.warnings) == 3 and "estimated from the pixels" in bracket.warnings[2]


def test_messages_name_the_ev_parameter() -> None:
    scene = _scene()
    frames = [_frame(scene, e, f"{i}.jpg") for i, e in enumerate((0.0, 2.0))]
    with pytest.raises(UsageError) as info:
        build_bracket(frames, ev=(0.0, 1.0, 2.0))
    assert str(info.value) == "ev gives 3 values for 2 frames"
    assert info.value.spelled({"ev": "--ev"}) == "--ev gives 3 values for 2 frames"
