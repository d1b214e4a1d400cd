"""The embedded classical face swap as one call: the model stage followed by the compositing stage.

:func:`swap_face` = :func:`~.model.swap_model` (landmark-driven dense warp, detail match, where the swap
acts) then :func:`~inference_server.compositing.classical.composite_face_crop` with default
:class:`~inference_server.compositing.controls.CompositeControls` (linear-light colour match, lighting
field, edge blend, the model's own soft mask). Callers that cache the model stage call the two stages
themselves.
"""

from __future__ import annotations

import numpy as np

from ..compositing.classical import composite_face_crop
from ..compositing.controls import CompositeControls
from ..faces.sources import SourceFace
from ..plates.colour import clip_unit, srgb_decode, srgb_encode
from .model import swap_model
from .params import SwapParams, SwapResult

__all__ = ["SwapParams", "SwapResult", "swap_face"]


def swap_face(target: np.ndarray, target_landmarks: np.ndarray, source: SourceFace,
              params: SwapParams = SwapParams(), controls: CompositeControls = CompositeControls()) -> SwapResult:
    """Put ``source``'s face onto the face in ``target``.

    Args:
        target: (h, w, 3) float32 display-referred sRGB-encoded [0, 1] crop around one face.
        target_landmarks: (68, 2) float32 landmarks of that face in crop pixel coordinates.
        source: the prepared source face.
        params: swap (model) settings.
        controls: compositing controls (blend and region weights are part of the returned mask).
    Returns:
        SwapResult with the swapped face (sRGB-encoded, equal to the clipped target where the mask is 0)
        and the soft mask on the crop grid. Deterministic.
    """
    if target.ndim != 3 or target.shape[2] != 3:
        raise ValueError(f"target must be (h, w, 3), got {target.shape}")
    tgt = clip_unit(target.astype(np.float32, copy=False))
    out = swap_model(tgt, target_landmarks, source, params)
    face_lin, mask = composite_face_crop(srgb_decode(tgt), target_landmarks, out, controls)
    face = np.where(mask[..., None] > 0, srgb_encode(face_lin), tgt).astype(np.float32)
    return SwapResult(face=np.ascontiguousarray(face), mask=np.ascontiguousarray(mask))
