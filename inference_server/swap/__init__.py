"""Embedded classical face swap (CPU, dlib landmarks, no learned generator).

Pipeline of :func:`swap_face`: source landmarks aligned to the target (similarity, turning affine as
head poses differ) keep the source's facial proportions; a thin-plate-spline warp carries the source
texture there; tone and colour are matched in linear light on skin, plus a smooth lighting field and an
edge-band correction; the mask is the destination face polygon (forehead band stopped at the hairline)
feathered inward, with the target's open mouth interior kept.
"""

from ..faces.errors import NoFaceError
from .core import SwapParams, SwapResult, swap_face
from .sources import SourceFace, choose_source, prepare_sources

# bump when the algorithm changes its output for the same inputs and params (part of cache keys)
ALGORITHM_ID = "classical-swap-v1"

__all__ = ["ALGORITHM_ID", "NoFaceError", "SourceFace", "SwapParams", "SwapResult", "choose_source",
           "prepare_sources", "swap_face"]
