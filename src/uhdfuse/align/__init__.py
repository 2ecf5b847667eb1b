"""Global registration of a bracket's frames to its reference frame.

Every non-reference frame is registered to the reference with one global motion
model (translation, euclidean, affine or homography). The matrices map
*reference* pixel coordinates to *moving* frame pixel coordinates, so::

    cv2.warpPerspective(moving, M, (W, H), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)

brings a moving frame into the reference geometry.

How a frame is registered, one module per step:

1. ``levels``: both frames become exposure-normalised luma (:func:`normalised_luma`):
   luma divided by ``2**ev`` so equal scene light gives equal values, gamma-encoded
   so shadows and highlights weigh alike, with a mask of trustworthy (unclipped,
   above-noise) pixels; a proxy (long side ``proxy_size``) and a refinement level
   are built from it.
2. ``matchers``: the coarse search on the proxy. SIFT features matched with a ratio
   test and a MAGSAC homography give a first guess robust to large motion; when that
   fails (flat or repetitive content) phase correlation gives a translation. A new
   matcher goes there.
3. ``ecc``: ``cv2.findTransformECCWithMask``, masked with both validity masks,
   refines the guess on the proxy, then once more on a level whose long side is at
   most ``levels.REFINE_SIZE`` (full resolution for smaller images), the matrix
   scaled between levels. Measured on synthetic textured scenes 2 EV apart with
   clipping: corner error below 0.12 px at 208x144 to 320x240, and below 0.03 px on
   a 3840x2160 bracket refined at 2048 px.
4. ``checks``: the result is rejected (:class:`~uhdfuse.errors.AlignmentFailed`) when
   ECC does not converge, the correlation or the residual is poor, the frames overlap
   on less than half the frame, or the matrix has an absurd scale, shear or
   perspective: a garbage registration is never returned. The crop is there too.

``register`` runs these steps for one pair of frames (:func:`estimate_transform`)
and chooses the model for AUTO; ``stage`` registers a whole bracket
(:func:`align_bracket`: frames far from the reference through their neighbours),
warps the frames at full resolution and crops them to the area every frame covers.
"""

from uhdfuse.align.levels import frame_luma, rank_luma
from uhdfuse.align.register import estimate_transform
from uhdfuse.align.stage import align_bracket

__all__ = ["align_bracket", "estimate_transform", "frame_luma", "rank_luma"]
