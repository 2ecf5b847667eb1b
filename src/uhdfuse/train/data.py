"""Training brackets for IPL, rendered from scene radiance we can trust.

:func:`make_sample` draws the sample of one seed from a :class:`~uhdfuse.train.scenes.SceneLibrary`
(scene radiance: :mod:`.scenes`, :mod:`.radiance`) and photographs it as a bracket with
its target (:mod:`.capture`, following a :class:`~uhdfuse.train.recipe.Recipe`);
:func:`heldout_cases` renders the held-out scenes for evaluation.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from uhdfuse.train.capture import Sample, render_sample
from uhdfuse.train.recipe import Recipe, margin
from uhdfuse.train.scenes import DEFAULT_DATA_DIR, SceneLibrary, heldout_library


def make_sample(library: SceneLibrary, recipe: Recipe, seed: list[int] | int, *, keep_static: bool = True) -> Sample:
    """The sample of one seed: a pure function of (library, recipe, seed).

    ``keep_static=False`` drops the static bracket once the target is made (halves a pool's memory).
    """
    rng = np.random.default_rng(seed)
    radiance, name = library.draw(rng, recipe.crop + 2 * margin(recipe), recipe.scale)
    sample = render_sample(radiance, rng, recipe)
    sample.info["scene"] = name
    return sample if keep_static else replace(sample, static=None)


HeldoutCase = tuple[np.ndarray, np.ndarray, tuple[float, ...], int]


def heldout_cases(n: int, seed: int = 0, *, size: int = 256, aligned: bool = True,
                  data_dir: Path | None = DEFAULT_DATA_DIR) -> list[HeldoutCase]:
    """``n`` moving (and, half of them, hand-held) brackets of held-out scenes, with their static counterparts.

    Returns a list of ``(moving, static, ev, ref)``: ``moving`` and ``static`` are
    (N, size, size, 3) float32 linear as the pipeline decodes them (display frames:
    8-bit codes through the inverse sRGB curve, so ``round(srgb_encode(x) * 255)``
    gives the exact 8-bit file back; no RAW-like frames here), ``ev`` ascending
    relative to the reference, ``ref`` the reference index. ``aligned=False``
    returns hand-held moving frames in their own geometry (for tools that align
    themselves); otherwise they went through ``uhdfuse.align``. Scenes:
    :data:`~uhdfuse.train.scenes.HELDOUT_FILES` (when ``data_dir`` has them) and
    :data:`~uhdfuse.train.scenes.HELDOUT_SEEDS`; ``heldout_library(data_dir).notes``
    says which files could not be used.
    """
    library = heldout_library(data_dir)
    recipe = Recipe(crop=size, moving=1.0, shake=0.5, real_align=1.0, raw=0.0, jpeg=0.0, objects=(1, 2),
                    scale=(0.5, 1.0), random_reference=0.0)
    cases = []
    for k in range(n):
        rng = np.random.default_rng([seed, 23, k])
        radiance, _ = library.draw(rng, size + 2 * margin(recipe), recipe.scale)
        s = render_sample(radiance, rng, recipe, align=aligned)
        cases.append((s.frames, s.static, tuple(float(e) for e in s.ev), s.reference))
    return cases


__all__ = ["HeldoutCase", "heldout_cases", "make_sample"]
