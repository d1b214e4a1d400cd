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
    live = mask > 0.0
    if not live.any():
        return 0
    ys, xs = np.flatnonzero(live.any(axis=1)), np.flatnonzero(live.any(axis=0))
    sub_rows = slice(rows.start + ys[0], rows.start + ys[-1] + 1)
    sub_cols = slice(cols.start + xs[0], cols.start + xs[-1] + 1)
    local = (slice(ys[0], ys[-1] + 1), slice(xs[0], xs[-1] + 1))
    src = plate[sub_rows, sub_cols][..., rgb_index]
    write = live[local] & np.isfinite(src).all(axis=2)
    m = np.where(write, mask[local], np.float32(0.0))[..., None].astype(np.float32)
    blended = src + m * (face_linear[local].astype(np.float32) - src)
    region = out[sub_rows, sub_cols]
    for k, channel in enumerate(rgb_index):
        np.copyto(region[..., channel], blended[..., k], where=write)
    return int(write.sum())
