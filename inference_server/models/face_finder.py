"""A face finder made of the detector and landmarker chosen from the models folder, dlib for the rest.

Rules (the dlib defaults are :class:`~inference_server.faces.dlib_models.DlibFaceModels` itself, unchanged):

- Detector: a neural detector (:class:`~.onnx_detector.OnnxFaceDetector`) replaces dlib's HOG detector and its
  CNN fallback; it applies its own score threshold (FaceFusion's 0.5), so dlib's HOG margin (``min_score``) and
  the expected face count do not apply. ``cnn_only`` (the registry's ``dlib-cnn`` named as the detector) runs
  dlib's CNN detector alone. Each face is reported with the detector's registry name.
- Landmarker: a neural landmarker (:class:`~.onnx_landmarker.OnnxLandmarker`) fits the 68 points in every box,
  on keyframes and while tracking. Where its score is not above 0.5 (FaceFusion's ``face_landmarker_score``:
  FaceFusion then falls back to points derived from the detector's five) dlib's shape predictor fits the box
  instead, so a face always has 68 points.
- Identity embeddings (re-identifying tracks) stay dlib's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..faces.dlib_models import DlibFaceModels
from ..faces.types import FaceDetection
from .onnx_detector import OnnxFaceDetector
from .onnx_landmarker import SCORE_THRESHOLD, OnnxLandmarker


def _largest_first(found: list[FaceDetection]) -> list[FaceDetection]:
    return sorted(found, key=lambda d: (-d.area, d.rect[1], d.rect[0]))


@dataclass
class ModelFaceFinder:
    """Detection and landmarks from chosen models (rules in the module docstring).

    Attributes:
        dlib: the embedded dlib models (fallback landmarks, embeddings, the default detector).
        detector: a neural detector, or None for dlib's.
        landmarker: a neural landmarker, or None for dlib's.
        cnn_only: with no neural detector, run dlib's CNN detector alone instead of HOG with the CNN fallback.
        identifier: provenance id (dlib's, plus the chosen models' ids).
        landmarker_threshold: a neural landmarker's fit is used when its score is above this.
    """

    dlib: DlibFaceModels
    detector: OnnxFaceDetector | None = None
    landmarker: OnnxLandmarker | None = None
    cnn_only: bool = False
    identifier: str = ""
    landmarker_threshold: float = SCORE_THRESHOLD

    def __post_init__(self) -> None:
        if not self.identifier:
            self.identifier = self.dlib.identifier

    def weights_hash(self) -> str:
        return self.dlib.weights_hash()

    def detect_with_fallback(self, rgb8: np.ndarray, min_score: float, expected: int = 1) -> list[FaceDetection]:
        """Faces with 68 landmarks each, largest box first (``min_score``/``expected``: dlib's HOG only)."""
        if self.detector is not None:
            name = self.detector.name
            found = [FaceDetection(face.rect, face.score, self.landmarks(rgb8, face.rect), name)
                     for face in self.detector.detect(rgb8)]
            return _largest_first(found)
        dlib_found = self.dlib.detect_cnn(rgb8) if self.cnn_only else \
            self.dlib.detect_with_fallback(rgb8, min_score, expected)
        if self.landmarker is None:
            return dlib_found
        return [FaceDetection(d.rect, d.score, self.landmarks(rgb8, d.rect), d.detector) for d in dlib_found]

    def landmarks(self, rgb8: np.ndarray, rect: tuple[float, float, float, float]) -> np.ndarray:
        """``(68, 2)`` float32: the neural landmarker's fit when its score is above the threshold, else dlib's."""
        if self.landmarker is not None:
            fitted = self.landmarker.fit(rgb8, rect)
            if fitted.score > self.landmarker_threshold:
                return fitted.points
        return self.dlib.landmarks(rgb8, rect)

    def embed(self, rgb8: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        return self.dlib.embed(rgb8, landmarks)
