"""Global registration of a bracket's frames to its reference frame."""

from uhdfuse.align.register import align_bracket, estimate_transform, normalised_luma

__all__ = ["align_bracket", "estimate_transform", "normalised_luma"]
