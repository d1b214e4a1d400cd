"""Compositing of an aligned stage's model output (:class:`~.delta_output.DeltaOutput`): the change it
made, applied to the plate's linear crop with the artist's controls.

Crops are (h, w, 3) float32 linear RGB (finite, exposure-normalised), masks (h, w) float32 in [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from ..faces.geometry import face_size
from . import colour
from .assembly import assemble, checked_target, controlled_mask, unchanged
from .controls import CompositeControls
from .delta_output import DeltaOutput
from .masks import ramp, shifted_edge


def delta_face(target_linear: np.ndarray, out: DeltaOutput, controls: CompositeControls,
               to_model: Callable[[np.ndarray], np.ndarray],
               from_model: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """The stage's face over the work box in the plate's linear light, colour-matched per the controls.

    ``target + (from_model(m + delta) - from_model(m))`` with ``m = to_model(target)``: exactly the
    target where the delta is 0, whatever the plate's range. Depends on the controls only through the
    colour match. Returns (bh, bw, 3) float32.
    """
    c = controls.validated()
    y0, x0, y1, x1 = (int(v) for v in out.box)
    tgt = np.asarray(target_linear, np.float32)[y0:y1, x0:x1]
    model = np.asarray(to_model(tgt), np.float32)
    moved = np.asarray(from_model(model + out.delta.astype(np.float32)), np.float32)
    face = tgt + (moved - np.asarray(from_model(model), np.float32))
    if c.colour_match == "none":
        return face
    weights = np.asarray(out.edge_distance, np.float32) > 0
    if c.colour_match == "mean-std":
        face = colour.match_statistics(face, tgt, weights, weights)
    else:
        face = colour.match_histograms(face, tgt, weights, weights)
    return colour.fit_gamut(face)


def composite_delta(target_linear: np.ndarray, target_landmarks: np.ndarray, out: DeltaOutput,
                    controls: CompositeControls, matched: Callable[[], np.ndarray],
                    parsed: Mapping[str, np.ndarray] | None = None,
                    occlusion: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Composite stage of an aligned model output (see :func:`~.classical.composite_face_crop`).

    Args:
        target_linear: (h, w, 3) float32 linear working crop (finite, exposure-normalised).
        target_landmarks: (68, 2) landmarks in crop pixels.
        out: the cached stage output for this crop.
        controls: the artist controls.
        matched: returns :func:`delta_face` for these arguments (a caller's memo).
        parsed: a face parser's soft masks on the crop, refining the region masks.
        occlusion: an occluder's (h, w) keep-mask on the crop; the mask never exceeds it.
    Returns:
        ``(face_linear, mask)``: (h, w, 3) float32 face (the target where the mask is 0) and (h, w)
        float32 mask in [0, 1] including blend, region weights and occlusion; exactly 0 outside the coverage
        and where the occlusion keep-mask is 0.
    """
    c = controls.validated()
    tl = checked_target(target_linear, out.crop_hw)
    if out.is_empty or c.blend == 0.0:
        return unchanged(tl)
    y0, x0, y1, x1 = (int(v) for v in out.box)
    size = face_size(target_landmarks)
    distance = shifted_edge(out.edge_distance, c.erode * size)
    mask = ramp(distance, float(out.settings[1]) + c.feather * size) * out.coverage.astype(np.float32)
    landmarks = np.asarray(target_landmarks, np.float64) - np.array([x0, y0])
    mask = controlled_mask(mask, c, landmarks, size, {k: v[y0:y1, x0:x1] for k, v in parsed.items()} if parsed else None,
                           occlusion[y0:y1, x0:x1] if occlusion is not None else None)
    if not (mask > 0).any():
        return unchanged(tl)
    return assemble(tl, (y0, x0, y1, x1), matched(), mask, c, size)
