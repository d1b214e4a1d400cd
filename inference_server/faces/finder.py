"""What shot analysis and single-frame detection need from a face detector and landmarker.

:class:`~.dlib_models.DlibFaceModels` is one (dlib's HOG detector with its CNN fallback, dlib's 68-point shape
predictor, dlib's identity embedding); :class:`inference_server.models.face_finder.ModelFaceFinder` is another
(a detector and/or landmarker chosen from the models folder, dlib for the rest). Analysis and detection take a
finder as a parameter, so they never choose models themselves.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from .types import FaceDetection


class FaceFinder(Protocol):
    """Finds faces, fits 68 landmarks in a box and describes a face's identity.

    Every image is ``(H, W, 3)`` uint8 display-referred sRGB RGB; boxes are ``(x0, y0, x1, y1)`` pixels.
    """

    identifier: str
    """Short provenance id of the models used (part of cache keys and of exported analyses)."""

    def detect_with_fallback(self, rgb8: np.ndarray, min_score: float, expected: int = 1) -> list[FaceDetection]:
        """Faces with 68 landmarks each, largest box first. ``min_score`` and ``expected`` are for detectors
        with a fallback (dlib's HOG margin, and how many faces the caller expects); a finder may ignore them."""
        ...

    def landmarks(self, rgb8: np.ndarray, rect: tuple[float, float, float, float]) -> np.ndarray:
        """``(68, 2)`` float32 iBUG landmarks fitted inside ``rect``."""
        ...

    def embed(self, rgb8: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """Identity descriptor of the face with these ``(68, 2)`` landmarks (distances compare identities)."""
        ...
