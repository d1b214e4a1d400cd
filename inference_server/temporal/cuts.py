"""Scene-cut detection between consecutive frames of a shot.

Convention: frames are compared through small display-referred thumbnails, ``(h, w, 3)`` uint8 sRGB.
"""

from __future__ import annotations

import cv2
import numpy as np

THUMB_SIZE = (64, 36)


def thumbnail(rgb8: np.ndarray) -> np.ndarray:
    """``(36, 64, 3)`` uint8 thumbnail used for cut detection (area-averaged, so grain does not matter)."""
    return cv2.resize(rgb8, THUMB_SIZE, interpolation=cv2.INTER_AREA)


def _histogram(thumb: np.ndarray) -> np.ndarray:
    hsv = cv2.cvtColor(thumb, cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1, 2], None, [12, 4, 4], [0, 180, 0, 256, 0, 256]).ravel()
    return hist / max(1.0, float(hist.sum()))


def cut_score(previous: np.ndarray, current: np.ndarray) -> float:
    """0 (same picture) .. 1 (unrelated pictures): mean of a colour-histogram distance and a pixel distance.

    Both halves must move for a high score: a camera move changes pixels but keeps the histogram; a light
    change shifts the histogram but keeps the structure.
    """
    hist = 0.5 * float(np.abs(_histogram(previous) - _histogram(current)).sum())
    a = cv2.cvtColor(previous, cv2.COLOR_RGB2GRAY).astype(np.float32)
    b = cv2.cvtColor(current, cv2.COLOR_RGB2GRAY).astype(np.float32)
    a = (a - a.mean()) / (a.std() + 1e-3)
    b = (b - b.mean()) / (b.std() + 1e-3)
    structure = float(np.clip(1.0 - (a * b).mean(), 0.0, 2.0) / 2.0)
    return 0.5 * (hist + structure)


def is_cut(previous: np.ndarray, current: np.ndarray, threshold: float = 0.25) -> bool:
    return cut_score(previous, current) > threshold
