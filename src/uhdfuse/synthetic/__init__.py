"""Synthetic HDR scenes and simulated exposure brackets, for examples, tests and training.

>>> from uhdfuse.synthetic import procedural_scene, render_bracket
>>> scene = procedural_scene(64, 96, seed=1)            # (64, 96, 3) linear radiance
>>> bracket = render_bracket(scene, (-2, 0, 2), seed=1)
>>> len(bracket.frames), bracket.reference
(3, 1)
"""

from uhdfuse.synthetic.camera import (
    MovingObject,
    RenderedBracket,
    expose,
    paste_moving_object,
    random_moving_objects,
    random_shake,
    render_bracket,
    warp_homography,
)
from uhdfuse.synthetic.dng import write_dng
from uhdfuse.synthetic.files import capture_order, write_bracket_files, write_example_bracket
from uhdfuse.synthetic.scene import procedural_scene

__all__ = [
    "MovingObject",
    "RenderedBracket",
    "capture_order",
    "expose",
    "paste_moving_object",
    "procedural_scene",
    "random_moving_objects",
    "random_shake",
    "render_bracket",
    "warp_homography",
    "write_bracket_files",
    "write_dng",
    "write_example_bracket",
]
