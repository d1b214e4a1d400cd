"""Assembly of a model's face into its crop: the artist's mask (region weights, blend) and the paste.

Shared by every model output's compositing (:mod:`.classical`, :mod:`.delta`). Crops are (h, w, 3)
float32 linear RGB, masks (h, w) float32 in [0, 1]; a box is ``(y0, x0, y1, x1)`` of the work box
inside the crop.
"""

from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np

from .controls import CompositeControls
from .grain import regrained
from .regions import refined_region_weight_map, region_weight_map

MASK_FLOOR = 1e-4  # mask values below this are 0 (the plate stays bit-exact there)


def checked_target(target_linear: np.ndarray, crop_hw: np.ndarray) -> np.ndarray:
    """``target_linear`` as float32, checked to be the (h, w, 3) crop a model output was computed for."""
    tl = np.asarray(target_linear, np.float32)
    h, w = (int(v) for v in crop_hw)
    if tl.shape != (h, w, 3):
        raise ValueError(f"target_linear is {tl.shape}, the model output is for a {h}x{w}x3 crop")
    return tl


def unchanged(target_linear: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(face, mask)`` of a crop left as it is: a copy of the target and an all-zero mask."""
    tl = np.asarray(target_linear, np.float32)
    return np.array(tl, np.float32, copy=True, order="C"), np.zeros(tl.shape[:2], np.float32)


def controlled_mask(mask: np.ndarray, controls: CompositeControls, landmarks: np.ndarray, size: float,
                    parsed: Mapping[str, np.ndarray] | None, occlusion: np.ndarray | None = None) -> np.ndarray:
    """A model's (bh, bw) float32 mask over its work box with the artist's region weights, the occluder's
    keep-mask and blend.

    The most restrictive mask wins: ``min(mask x region weights, occlusion) x blend``, so where an occluder
    sees something in front of the face (keep 0) the plate stays whatever the region weights say. Values
    below a floor become exactly 0 (the plate stays bit-exact there). ``landmarks`` are in work-box pixels;
    ``parsed`` holds a face parser's soft masks over the same box (or None); ``occlusion`` the (bh, bw)
    keep-mask in [0, 1] over the same box (or None).
    """
    c = controls
    mask = mask * (mask > MASK_FLOOR)
    weights = c.region_weights()
    if any(v != 1.0 for v in weights.values()):
        mask *= (refined_region_weight_map(mask.shape, landmarks, size, weights, parsed)
                 if parsed else region_weight_map(mask.shape, landmarks, size, weights))
    if occlusion is not None:
        keep = np.asarray(occlusion, np.float32)
        if keep.shape != mask.shape:
            raise ValueError(f"occlusion mask is {keep.shape}, the work box is {mask.shape}")
        mask = np.minimum(mask, keep * (keep > MASK_FLOOR))
    if c.blend != 1.0:
        mask *= np.float32(c.blend)
    return mask.astype(np.float32, copy=False)


def assemble(target_linear: np.ndarray, box: tuple[int, int, int, int], face: np.ndarray, mask: np.ndarray,
             controls: CompositeControls, size: float) -> tuple[np.ndarray, np.ndarray]:
    """The full-crop ``(face, mask)``: ``face`` (bh, bw, 3) linear over ``box`` (y0, x0, y1, x1), with the
    plate's grain put back per the controls, wherever ``mask`` is live, the target everywhere else."""
    y0, x0, y1, x1 = box
    tl = np.asarray(target_linear, np.float32)
    tgt = tl[y0:y1, x0:x1]
    face = regrained(face, tgt, controls.grain, size)
    region = np.array(tgt, np.float32, copy=True, order="C")  # (tgt may be a read-only view)
    cv2.copyTo(np.ascontiguousarray(face, dtype=np.float32), (mask > 0).view(np.uint8), region)
    face_full = np.array(tl, np.float32, copy=True, order="C")
    mask_full = np.zeros(tl.shape[:2], np.float32)
    face_full[y0:y1, x0:x1] = region
    mask_full[y0:y1, x0:x1] = mask
    return face_full, mask_full
