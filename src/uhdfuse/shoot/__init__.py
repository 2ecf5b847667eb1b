"""Finding the brackets of a whole shoot from metadata alone (no pixel is decoded).

:func:`find_groups` turns files or folders into the :class:`Group` s of a
:class:`Shoot`, one of three ways (:class:`~uhdfuse.config.Grouping`):

* ``auto`` (:func:`group_auto`, rules in :mod:`uhdfuse.shoot.auto`): each camera
  body's frames, by capture time, time gap and exposure pattern;
* ``frames`` (:func:`group_fixed`): consecutive runs of exactly N frames, in capture
  order, as Luminance HDR and Photomatix expect; what is left at the end is a leftover;
* ``folders`` (:func:`group_folders`): every folder holding images is one bracket.

Every :class:`Group` says why it was formed (``reason``), so a dry run can show it.
Groups of one frame (``single``), unfinished fixed-size runs (``leftover``) and
files whose metadata cannot be read (``unreadable``) are reported, never fused.
The :class:`~uhdfuse.types.Bracket` a pipeline fuses is built from a group's files
by :mod:`uhdfuse.exposure`.
"""

from uhdfuse.shoot.auto import DEFAULT_GAP, group_auto
from uhdfuse.shoot.find import find_groups, group_fixed, group_folders
from uhdfuse.shoot.frames import FrameInfo, camera_name, capture_sorted, scan
from uhdfuse.shoot.group import Group, GroupKind, Shoot

__all__ = [
    "DEFAULT_GAP",
    "FrameInfo",
    "Group",
    "GroupKind",
    "Shoot",
    "camera_name",
    "capture_sorted",
    "find_groups",
    "group_auto",
    "group_fixed",
    "group_folders",
    "scan",
]
