"""Plain data types shared by the face detectors, trackers and swap/restore stages."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FaceDetection:
    """One detected face.

    Attributes:
        rect: ``(x0, y0, x1, y1)`` detector box in pixels of the image that was given to the detector.
        score: detector confidence (dlib HOG: SVM margin; neural detectors: [0, 1]; larger is more confident).
        landmarks: ``(68, 2)`` float32, ``x, y`` pixel centres in the same image, iBUG 68-point order
            (jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67).
        detector: which detector found the face: ``hog`` (dlib's frontal HOG detector), ``cnn`` (dlib's
            MMOD CNN detector, the fallback where HOG finds fewer faces than expected) or the registry name of a
            neural detector from the models folder (``scrfd_2.5g``, ...).
    """

    rect: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray
    detector: str = "hog"

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.rect
        return max(0.0, x1 - x0) * max(0.0, y1 - y0)
