"""Compositing a processed face back over the plate in the plate's linear space."""

from __future__ import annotations

import numpy as np

from .crops import Box


def composite_face(
    out: np.ndarray,
    plate: np.ndarray,
    rgb_index: list[int],
    box: Box,
    face_linear: np.ndarray,
    mask: np.ndarray,
) -> int:
    """Blend ``face_linear`` over ``plate`` inside ``box``, writing the result into ``out`` in place.

    ``out = plate + mask * (face - plate)`` on the RGB channels, only where ``mask > 0`` and the plate's
    RGB is finite; every other pixel and every other channel of ``out`` is left exactly as it is (the
    caller starts ``out`` as a copy of the plate, so untouched pixels are bit-exact copies).

    Args:
        out: ``(H, W, C)`` float32 output frame, modified in place.
        plate: ``(H, W, C)`` float32 original frame (scene-linear).
        rgb_index: the indices of R, G, B in the channel axis.
        box: where ``face_linear`` and ``mask`` sit in the frame.
        face_linear: ``(h, w, 3)`` float32, scene-linear, the processed face crop.
        mask: ``(h, w)`` float32 in [0, 1], already scaled by blend strength.

    Returns:
        The number of pixels written.
    """
    rows, cols = box.slices
    src = plate[rows, cols][..., rgb_index]
    finite = np.isfinite(src).all(axis=2)
    write = (mask > 0.0) & finite
    if not write.any():
        return 0
    m = mask[write][:, None].astype(np.float32)
    blended = src[write] + m * (face_linear[write].astype(np.float32) - src[write])
    region = out[rows, cols]
    for k, channel in enumerate(rgb_index):
        plane = region[..., channel]
        plane[write] = blended[:, k]
    return int(write.sum())
