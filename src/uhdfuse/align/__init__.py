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
   a mask of trustworthy (unclipped, above the black floor) pixels; a coarse level
   (long side 256), a proxy (long side ``proxy_size``) and, for frames much larger
   than the proxy, a fine level (long side about 2048) are built from it.
2. ``compare``: the two frames made comparable. Both are clipped at the ranks both
   resolve (the outlines of what one frame clipped become structure both share);
   under an estimate, the finer-quantised luma is mapped onto the other through
   the tone curve between them (a median per bin), and what disagrees most (what
   moved in the scene) is left out of the fit.
3. ``matchers``: first guesses. No motion and the best translation over every
   shift of the coarse levels (masked normalised cross-correlation) first; a SIFT
   + MAGSAC homography only when the fit from those fails or a frame is mostly
   clipped or black (and then fitted only where it disagrees with the direct fit).
   A new matcher goes there.
4. ``lk``: the fit. Robust, sparse, inverse-compositional Lucas-Kanade on the
   pixels of most detail, spread over the frame: a rigid fit on the coarse levels
   from every guess (the best kept), the model on the coarse levels and then, in
   rounds with the comparison measured anew, on the proxy, and last on the fine
   level. The template of two levels compared alike (points, values, gradients)
   serves every fit between them: each model tried, each start.
5. ``checks``: the result is rejected (:class:`~uhdfuse.errors.AlignmentFailed`)
   when the residual is high or leaves most of the luma unexplained, the frames
   agree under it hardly better than by chance and no features support it, they
   overlap on less than half the frame, or the matrix has an absurd scale, shear,
   rotation or perspective: a garbage registration is never returned knowingly.
   The crop is there too.

``register`` runs these steps for one pair of frames (:func:`estimate_transform`)
and chooses the model for AUTO (the identity included: a tripod bracket is not
resampled, and a frame that the direct guesses and a rigid fit from no motion
show still is taken as it is without the rest of the search); ``stage``
registers a whole bracket (:func:`align_bracket`: frames far from the reference
through their neighbours, then refined against the reference itself; a frame
nothing places taken as unmoved only in a still bracket), warps the frames at
full resolution (at once, on the cores there are) and crops them to the largest
rectangle every frame covers.
"""

from uhdfuse.align.levels import frame_luma, rank_luma
from uhdfuse.align.register import estimate_transform
from uhdfuse.align.stage import align_bracket

__all__ = ["align_bracket", "estimate_transform", "frame_luma", "rank_luma"]
