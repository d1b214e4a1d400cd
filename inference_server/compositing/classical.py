"""Compositing of the classical swap's model output: artist controls applied to a cached
:class:`~.classical_output.SwapModelOutput`.

:func:`composite_face_crop` turns the model output and the plate's linear crop into the face and the blend
mask the framework composites as ``plate + mask * (face - plate)``. It does no landmark fitting and no
warping: colour match (in linear light), the mask's edge (feather, erode/dilate), per-region weights,
grain retention and blend strength, all vectorised, so moving a slider re-composites from the cache in
milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from ..faces.geometry import face_size
from ..plates.colour import srgb_decode
from . import colour
from .assembly import assemble, checked_target, controlled_mask, unchanged
from .classical_output import FLAG_SHADING, FLAG_SOURCE_SKIN, FLAG_TARGET_SKIN, SwapModelOutput
from .controls import CompositeControls
from .edge import edge_correction
from .masks import ramp, shifted_edge


def _srgb_lut() -> np.ndarray:
    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    vals = np.nan_to_num(bits.view(np.float16).astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    table = srgb_decode(vals)
    table.flags.writeable = False
    return table


_SRGB_DECODE_F16 = _srgb_lut()  # sRGB EOTF of every float16 value (exactly srgb_decode of its float32)


def decode_model_space(encoded_f16: np.ndarray) -> np.ndarray:
    """float16 sRGB-encoded model-space pixels -> linear Rec.709 float32 (a table lookup)."""
    return _SRGB_DECODE_F16[np.ascontiguousarray(encoded_f16, np.float16).view(np.uint16)]


def _edge(model_out: SwapModelOutput, erode: float, size: float) -> np.ndarray:
    """The model's signed edge distance moved by ``erode`` x ``size``, never past its allowed zone."""
    return shifted_edge(model_out.edge_distance, erode * size, model_out.allowed_distance)


def matched_face(target_linear: np.ndarray, target_landmarks: np.ndarray, model_out: SwapModelOutput,
                 controls: CompositeControls = CompositeControls(),
                 from_model: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """The swapped face of the work box in the plate's linear light, colour-matched to the target.

    Depends on the controls only through :func:`~.controls.colour_stage_key` (colour match, feather and
    erode move the edge correction), so a caller may keep it while the blend, region weights or grain
    change.

    Args: as :func:`composite_face_crop`.
    Returns:
        (bh, bw, 3) float32 linear face over ``model_out.box``, before grain and masking.
    """
    c = controls.validated()
    tl = np.asarray(target_linear, np.float32)
    y0, x0, y1, x1 = (int(v) for v in model_out.box)
    tgt = tl[y0:y1, x0:x1]
    T = np.asarray(target_landmarks, np.float64).reshape(68, 2)
    size = face_size(T)
    _, feather_px, edge_px, degree = (float(v) for v in model_out.settings)
    if from_model is None:
        face = decode_model_space(model_out.source)
    else:
        face = np.asarray(from_model(model_out.source.astype(np.float32)), np.float32)
    if c.colour_match == "none":
        return face
    flags = model_out.flags
    src_w = (flags & FLAG_SOURCE_SKIN) > 0
    tgt_w = (flags & FLAG_TARGET_SKIN) > 0
    if c.colour_match == "mean-std":
        face = colour.match_statistics(face, tgt, src_w, tgt_w)
    else:
        face = colour.match_histograms(face, tgt, src_w, tgt_w)
    if degree > 0:
        centre = (float(T[:, 0].mean()) - x0, float(T[:, 1].mean()) - y0)
        ratio = colour.shading_field(face, tgt, ((flags & FLAG_SHADING) > 0).astype(np.float32),
                                     centre, size, int(degree), stride=3)
        face *= ratio[..., None]
    if edge_px > 0:
        width = feather_px + c.feather * size
        face = edge_correction(face, tgt, _edge(model_out, c.erode, size), width, edge_px + c.feather * size)
    return colour.fit_gamut(face)


def composite_face_crop(target_linear: np.ndarray, target_landmarks: np.ndarray, model_out: SwapModelOutput,
                        controls: CompositeControls = CompositeControls(),
                        from_model: Callable[[np.ndarray], np.ndarray] | None = None,
                        matched: Callable[[], np.ndarray] | None = None,
                        parsed: Mapping[str, np.ndarray] | None = None,
                        occlusion: np.ndarray | None = None,
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Composite stage: the swapped face and its blend mask for one face crop.

    Args:
        target_linear: (h, w, 3) float32 linear crop of the plate (finite, exposure-normalised by the
            caller; values may exceed 1), the crop ``model_out`` was computed for.
        target_landmarks: (68, 2) the face's landmarks in crop pixels.
        model_out: the cached model stage of this face.
        controls: the artist controls.
        from_model: converts the model-space source (float32 (n, m, 3), sRGB-encoded [0, 1]) to the
            plate's linear space; default the sRGB EOTF (linear Rec.709 plates), done by table lookup.
        matched: returns :func:`matched_face` for these arguments (a caller's memo); computed here when
            absent. Called only when some of the face shows.
        parsed: a face parser's soft (h, w) masks of eyes, brows, nose, mouth on the crop; they refine
            the landmark region masks (:func:`~.regions.refined_region_weight_map`).
        occlusion: an occluder's (h, w) keep-mask in [0, 1] on the crop (1 = face seen, 0 = something in
            front of it); the mask is at most this wherever it is (the most restrictive wins).
    Returns:
        ``(face_linear, mask)``: (h, w, 3) float32 linear face (equal to ``target_linear`` where the
        mask is 0) and (h, w) float32 mask in [0, 1], already multiplied by the blend strength and the
        region weights. The mask is exactly 0 wherever the model's coverage is 0 or a region of weight 0
        applies fully or the occlusion keep-mask is 0. Deterministic.
    """
    c = controls.validated()
    tl = checked_target(target_linear, model_out.crop_hw)
    if model_out.is_empty or c.blend == 0.0:
        return unchanged(tl)

    y0, x0, y1, x1 = (int(v) for v in model_out.box)
    win = (slice(y0, y1), slice(x0, x1))
    T = np.asarray(target_landmarks, np.float64).reshape(68, 2)
    size = face_size(T)
    feather_px = float(model_out.settings[1])

    # mask: the model's edge, moved and softened, times occlusion / mouth interior, region weights, blend
    mask = ramp(_edge(model_out, c.erode, size), feather_px + c.feather * size)
    mask *= model_out.keep.astype(np.float32)
    mask = controlled_mask(mask, c, T - np.array([x0, y0]), size,
                           {k: v[win] for k, v in parsed.items()} if parsed else None,
                           occlusion[win] if occlusion is not None else None)
    if not (mask > 0).any():
        return unchanged(tl)
    face = matched() if matched is not None else matched_face(tl, T, model_out, c, from_model)
    return assemble(tl, (y0, x0, y1, x1), face, mask, c, size)
