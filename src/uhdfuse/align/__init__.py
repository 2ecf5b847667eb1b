"""Global registration of a bracket's frames to its reference frame.

Every non-reference frame is registered to the reference with one global motion
model (translation, euclidean, affine or homography). The matrices map
*reference* pixel coordinates to *moving* frame pixel coordinates, so::

    cv2.warpPerspective(moving, M, (W, H), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)

brings a moving frame into the reference geometry.

How a frame is registered, one module per step:

1. ``levels``: both frames become *rank luma* (:func:`rank_luma` of
   :func:`frame_luma`): each pixel's luma replaced by the fraction of the frame that
   is darker, which exposure, gain and any monotone tone curve leave unchanged, with
   a mask of trustworthy (unclipped, above the black floor) pixels; a coarse level,
   a proxy (long side ``proxy_size``) and a refinement level are built from it.
2. ``matchers``: the coarse search. No motion, the best translation over every
   shift of the coarse levels (masked normalised cross-correlation) and a SIFT +
   MAGSAC homography are proposed; the one under which the frames agree best is
   kept. A new matcher goes there.
3. ``ecc``: ``cv2.findTransformECCWithMask``, masked with both validity masks,
   refines the guess on the proxy, again without the pixels that disagree most
   (what moved in the scene), then on a level whose long side is at most
   ``levels.REFINE_SIZE``, the matrix scaled between levels.
4. ``checks``: the result is rejected (:class:`~uhdfuse.errors.AlignmentFailed`) when
   ECC does not converge, the correlation is poor, the residual is high or leaves
   most of the luma unexplained, the frames overlap on less than half the frame, or
   the matrix has an absurd scale, shear, rotation or perspective: a garbage
   registration is never returned. The crop is there too.

``register`` runs these steps for one pair of frames (:func:`estimate_transform`)
and chooses the model for AUTO (the identity included: a tripod bracket is not
resampled); ``stage`` registers a whole bracket
(:func:`align_bracket`: frames far from the reference through their neighbours),
warps the frames at full resolution and crops them to the area every frame covers.
"""

from uhdfuse.align.levels import frame_luma, rank_luma
from uhdfuse.align.register import estimate_transform
from uhdfuse.align.stage import align_bracket

__all__ = ["align_bracket", "estimate_transform", "frame_luma", "rank_luma"]
