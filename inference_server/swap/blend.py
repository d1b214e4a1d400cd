"""Seam handling: make the swapped face agree with the plate along the mask's edge."""

from __future__ import annotations

import cv2
import numpy as np

from .masks import feathered


def edge_correction(face_lin: np.ndarray, tgt_lin: np.ndarray, hard: np.ndarray, ring_width: float,
                    reach: float, max_log_ratio: float = 1.0) -> np.ndarray:
    """Per-channel multiplicative correction that matches ``face_lin`` to ``tgt_lin`` on the band just
    inside the edge of ``hard`` and fades to no correction ``reach`` px inside it.

    This is the low-frequency part of a gradient-domain (Poisson) blend: the log ratio target/face is
    sampled on the edge band (``ring_width`` px wide), spread smoothly by normalised convolution and
    applied with a weight that is 1 at the edge and 0 deep inside. The ratio is clipped to
    ``exp(+-max_log_ratio)`` so that hair or background under the edge cannot stain the face.

    Args:
        face_lin, tgt_lin: (h, w, 3) float32 linear RGB.
        hard: (h, w) uint8 0/1, the region the face is pasted into.
    Returns:
        (h, w, 3) float32 linear RGB, corrected face.
    """
    inner = feathered(hard, ring_width)
    ring = ((hard > 0) & (inner < 1.0)).astype(np.float32)
    if ring.sum() < 4:
        return face_lin
    d = np.log(np.maximum(tgt_lin, 0.0) + 1e-3) - np.log(np.maximum(face_lin, 0.0) + 1e-3)
    d = np.clip(d, -max_log_ratio, max_log_ratio) * ring[..., None]
    sigma = max(1.0, 0.5 * ring_width)
    num = cv2.GaussianBlur(d, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    den = cv2.GaussianBlur(ring, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    spread = num / np.maximum(den, 1e-4)[..., None]
    # where the ring is too far for the blur to reach, fade the correction out
    support = np.clip(den / 0.05, 0.0, 1.0)
    fall = (1.0 - feathered(hard, reach)) * support
    return (face_lin * np.exp(spread * fall[..., None])).astype(np.float32)
