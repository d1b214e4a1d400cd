"""Embedded classical face swap (CPU, dlib landmarks, no learned generator).

:func:`swap_model` is the model stage: the cacheable, deterministic part for one face crop, a
:class:`~inference_server.compositing.classical_output.SwapModelOutput`. Its compositing (blend, region
weights, mask feather / erode, grain, colour match) is :mod:`inference_server.compositing`, shared with
every other model. :func:`swap_face` runs both.

Pipeline of :func:`swap_face`: source landmarks aligned to the target (similarity, turning affine as
head poses differ) keep the source's facial proportions; a thin-plate-spline warp carries the source
texture there; tone and colour are matched in linear light on skin, plus a smooth lighting field and an
edge-band correction; the mask is the destination face polygon (forehead band stopped at the hairline)
feathered inward, with the target's open mouth interior kept.
"""

from ..compositing.classical_output import SwapModelOutput
from ..compositing.controls import CompositeControls
from ..faces.sources import SourceFace
from .core import swap_face
from .model import swap_model
from .params import SwapParams, SwapResult

# bump when the algorithm changes its output for the same inputs and params (part of cache keys)
ALGORITHM_ID = "classical-swap-v2"

# SourceFace, CompositeControls and SwapModelOutput are the types of swap_model's and swap_face's arguments
# and result, named here for the callers of those
__all__ = ["ALGORITHM_ID", "CompositeControls", "SourceFace", "SwapModelOutput", "SwapParams", "SwapResult",
           "swap_face", "swap_model"]
