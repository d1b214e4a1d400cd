"""Fine-detail matching for the classical swap's model stage: a sharp source face softened to the plate's
level of detail. Images are (h, w, 3) float32 linear RGB, weights (h, w) float32."""

from __future__ import annotations

import cv2
import numpy as np

from ..compositing.colour import luminance

SIGMAS = (0.6, 0.9, 1.3, 1.8, 2.5, 3.5)
"""The blurs :func:`match_sharpness` tries, in px, weakest first."""


def detail_level(lin: np.ndarray, weight: np.ndarray) -> float:
    """Fine-detail energy of an image region: weighted RMS of the Laplacian of log luminance."""
    ly = np.log(luminance(lin) + 1e-3)
    lap = cv2.Laplacian(ly, cv2.CV_32F, ksize=1)
    sel = weight > 0
    if not sel.any():
        return 0.0
    return float(np.sqrt((lap[sel] ** 2 * weight[sel]).sum() / weight[sel].sum()))


def match_sharpness(src_lin: np.ndarray, tgt_lin: np.ndarray, src_w: np.ndarray, tgt_w: np.ndarray,
                    sigmas: tuple[float, ...] = SIGMAS) -> np.ndarray:
    """Blur the source (Gaussian, sigma from ``sigmas`` in px) until its fine detail is no stronger than
    the target's, so a sharp face does not sit on a soft plate. Never sharpens."""
    want = detail_level(tgt_lin, tgt_w)
    if detail_level(src_lin, src_w) <= want * 1.05:
        return src_lin
    out = src_lin
    for sg in sigmas:
        out = cv2.GaussianBlur(src_lin, (0, 0), sg, borderType=cv2.BORDER_REFLECT)
        if detail_level(out, src_w) <= want * 1.05:
            break
    return out
