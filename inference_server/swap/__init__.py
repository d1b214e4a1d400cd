"""Embedded classical face swap (CPU, dlib landmarks, no learned generator).

Two stages (see :mod:`.model` and :mod:`.compositing`): :func:`swap_model` computes the cacheable,
deterministic part for one face crop; :func:`composite_face_crop` applies the artist controls (blend,
region weights, mask feather / erode, grain, colour match) in milliseconds. :func:`swap_face` runs both.

Pipeline of :func:`swap_face`: source landmarks aligned to the target (similarity, turning affine as
head poses differ) keep the source's facial proportions; a thin-plate-spline warp carries the source
texture there; tone and colour are matched in linear light on skin, plus a smooth lighting field and an
edge-band correction; the mask is the destination face polygon (forehead band stopped at the hairline)
feathered inward, with the target's open mouth interior kept.
"""

from ..faces.errors import NoFaceError
from ..faces.sources import SourceFace
from .compositing import (COLOUR_MATCH_MODES, CompositeControls, colour_stage_key, composite_face_crop, matched_face,
                          parse_regions)
from .core import swap_face
from .model import SwapModelOutput, swap_model
from .params import SwapParams, SwapResult
from .regions import REGION_NAMES, region_masks

# bump when the algorithm changes its output for the same inputs and params (part of cache keys)
ALGORITHM_ID = "classical-swap-v2"

__all__ = ["ALGORITHM_ID", "COLOUR_MATCH_MODES", "CompositeControls", "NoFaceError", "REGION_NAMES", "SourceFace",
           "SwapModelOutput", "SwapParams", "SwapResult", "colour_stage_key", "composite_face_crop",
           "matched_face", "parse_regions", "region_masks", "swap_face", "swap_model"]
