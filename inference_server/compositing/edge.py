"""Seam handling: the face made to agree with the plate along the mask's edge (the low-frequency part of a
gradient-domain blend). Images are (h, w, 3) float32 linear RGB; distances (h, w) float32 px."""

from __future__ import annotations

import cv2
import numpy as np

from .masks import ramp


def edge_correction(face: np.ndarray, tgt: np.ndarray, distance: np.ndarray, ring_width: float,
                    reach: float, max_log_ratio: float = 1.0) -> np.ndarray:
    """Match ``face`` to ``tgt`` on the band just inside the mask edge and fade the correction out
    ``reach`` px inside: the low-frequency part of a gradient-domain blend.

    The per-channel log ratio target/face is sampled on the edge band (``ring_width`` px wide, from the
    signed edge ``distance``), clipped to ``+-max_log_ratio`` so hair or background cannot stain the
    face, spread smoothly by normalised convolution (a Gaussian of half the ring width) and applied
    with a weight of 1 at the edge and 0 deep inside. The spreading is smooth, so it runs on a grid
    coarsened to about a third of that Gaussian.

    Returns:
        (h, w, 3) float32 linear RGB, the corrected face.
    """
    ring: np.ndarray = ((distance > 0) & (distance - 0.5 < ring_width)).astype(np.float32)
    if ring.sum() < 4:
        return face
    h, w = ring.shape
    sigma = max(1.0, 0.5 * ring_width)
    f = int(np.clip(sigma / 3.0, 1, 16))
    eps = np.float32(1e-3)
    fall: np.ndarray = 1.0 - ramp(distance, reach)
    if f > 1:
        size = (max(1, -(-w // f)), max(1, -(-h // f)))
        ring = cv2.resize(ring, size, interpolation=cv2.INTER_AREA)
        fall = cv2.resize(fall, size, interpolation=cv2.INTER_AREA)
        face_c = cv2.resize(face, size, interpolation=cv2.INTER_AREA)
        tgt_c = cv2.resize(tgt, size, interpolation=cv2.INTER_AREA)
    else:
        face_c, tgt_c = face, tgt
    d = cv2.log(np.maximum(tgt_c, 0.0) + eps) - cv2.log(np.maximum(face_c, 0.0) + eps)
    np.clip(d, -max_log_ratio, max_log_ratio, out=d)
    both = np.concatenate([d * ring[..., None], ring[..., None]], axis=2)
    both = cv2.GaussianBlur(both, (0, 0), sigma / f, borderType=cv2.BORDER_REPLICATE)
    den = both[..., 3]
    weight = np.clip(den * 20.0, 0.0, 1.0) * fall / np.maximum(den, 1e-4)
    gain = cv2.exp(np.ascontiguousarray(both[..., :3] * weight[..., None]))
    if f > 1:
        gain = cv2.resize(gain, (w, h), interpolation=cv2.INTER_LINEAR)
    return face * gain
