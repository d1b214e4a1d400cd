"""Grain retention: the plate's own fine detail (film grain, skin texture) put back into a model's face.
Images are (h, w, 3) float32 linear RGB on the same grid."""

from __future__ import annotations

import cv2
import numpy as np

GRAIN_SIGMA = 0.006  # high-pass scale of grain retention, x face size (>= 0.8 px)


def high_pass(img: np.ndarray, sigma: float) -> np.ndarray:
    """``img`` minus its Gaussian blur of ``sigma`` px (reflected border)."""
    return img - cv2.GaussianBlur(img, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


def regrained(face: np.ndarray, plate: np.ndarray, amount: float, size: float) -> np.ndarray:
    """``face`` with ``amount`` (0..1) of its fine detail replaced by the plate's, the detail scale set by
    the face ``size`` in px; ``face`` itself when ``amount`` is 0."""
    if amount <= 0.0:
        return face
    sigma = max(0.8, GRAIN_SIGMA * size)
    return face + np.float32(amount) * (high_pass(plate, sigma) - high_pass(face, sigma))
