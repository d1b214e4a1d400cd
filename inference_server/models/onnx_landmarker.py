"""Neural 68-point landmarkers in FaceFusion's ONNX formats: ``2dfan4`` and ``peppa_wutz``.

Contracts (facts from FaceFusion 3.x ``facefusion/face_landmarker.py`` ``detect_with_2dfan4`` /
``detect_with_peppa_wutz`` / ``conditional_optimize_contrast``, and the ``face_landmarker_score`` default in
``program.py``; the code here is our own):

- Input ``input`` ``(1, 3, 256, 256)`` float32 in [0, 1], **BGR** channel order (FaceFusion's frames are
  OpenCV BGR). The crop is the detector box scaled so that its longer side is 195 px, centred in the 256 px
  square (``crop = s * frame + t`` with ``s = 195 / max(w, h)``, ``t = (256 - (x0 + x1, y0 + y1) * s) / 2``),
  bilinear, zero outside the frame. A dark crop (mean L* below 30 on OpenCV's 0..255 scale) gets CLAHE
  (clip limit 2) on its lightness first.
- ``2dfan4``: two outputs, ``(1, 68, 3)`` points whose x, y are in 64 px heatmap units (times 4 for crop
  pixels) and ``(1, 68, 64, 64)`` heatmaps; score = the mean over points of each heatmap's peak, mapped from
  [0, 0.9] to [0, 1] (clipped).
- ``peppa_wutz``: one output of 68 x 3 values (``x, y, confidence`` per point, x, y in 64 px units); score =
  the mean confidence mapped from [0, 0.95] to [0, 1] (clipped).
- FaceFusion uses a landmarker's 68 points only when its score is above 0.5 (``face_landmarker_score``);
  :data:`SCORE_THRESHOLD` is that value, applied by the caller.

Points are iBUG 68-point order, so :func:`~.alignment.points5_from_68` gives the five alignment points
exactly as FaceFusion's 68-to-5 conversion does (eye centres = means of points 36-41 and 42-47, nose tip 30,
mouth corners 48 and 54).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .onnx_session import OnnxModelError, open_session, run_session

LANDMARKER_SIZE = 256
LANDMARKER_INPUTS = {"input": (1, 3, LANDMARKER_SIZE, LANDMARKER_SIZE)}
FACE_EXTENT = 195.0  # the box's longer side in crop pixels
HEATMAP_SIZE = 64
SCORE_THRESHOLD = 0.5
DARK_LIGHTNESS = 30.0
CLAHE_CLIP = 2.0
SCORE_RANGES = {"2dfan4": 0.9, "peppa_wutz": 0.95}  # raw score mapped from [0, this] to [0, 1]
LAYOUTS: tuple[str, ...] = ("2dfan4", "peppa_wutz")


@dataclass(frozen=True)
class FittedLandmarks:
    """68 points fitted by a neural landmarker.

    Attributes:
        points: ``(68, 2)`` float32 ``x, y`` frame pixels, iBUG order.
        score: confidence in [0, 1] (mapped as FaceFusion does).
    """

    points: np.ndarray
    score: float


def crop_matrix(rect: Sequence[float], size: int = LANDMARKER_SIZE, extent: float = FACE_EXTENT) -> np.ndarray:
    """``(2, 3)`` float64 ``crop_from_frame`` matrix of a box ``(x0, y0, x1, y1)`` (see the module docstring)."""
    x0, y0, x1, y1 = (float(v) for v in rect)
    scale = extent / max(x1 - x0, y1 - y0, 1.0)
    tx = (size - (x0 + x1) * scale) * 0.5
    ty = (size - (y0 + y1) * scale) * 0.5
    return np.array([[scale, 0.0, tx], [0.0, scale, ty]], np.float64)


def landmarker_input(rgb8: np.ndarray, matrix: np.ndarray, size: int = LANDMARKER_SIZE) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB frame -> ``(1, 3, size, size)`` float32 BGR [0, 1] model input."""
    image = np.asarray(rgb8)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
    crop = cv2.warpAffine(np.ascontiguousarray(image), matrix, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    lab = cv2.cvtColor(crop, cv2.COLOR_RGB2LAB)
    if float(lab[..., 0].mean()) < DARK_LIGHTNESS:
        lab[..., 0] = cv2.createCLAHE(clipLimit=CLAHE_CLIP).apply(np.ascontiguousarray(lab[..., 0]))
        crop = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)
    bgr = crop[..., ::-1].astype(np.float32) / 255.0
    return np.ascontiguousarray(bgr.transpose(2, 0, 1)[None])


def _mapped_score(raw: float, top: float) -> float:
    return float(np.clip(raw / top, 0.0, 1.0))


def decode_2dfan4(points: np.ndarray, heatmaps: np.ndarray, size: int = LANDMARKER_SIZE) -> tuple[np.ndarray, float]:
    """``(1, 68, 3)`` points and ``(1, 68, 64, 64)`` heatmaps -> ``(68, 2)`` float64 crop pixels and the score."""
    p = np.asarray(points, np.float64).reshape(-1, np.asarray(points).shape[-1])
    h = np.asarray(heatmaps, np.float64)
    if p.shape[0] != 68 or p.shape[1] < 2 or h.size % 68:
        raise ValueError(f"2dfan4: expected (1, 68, 3) points and (1, 68, 64, 64) heatmaps, got {np.shape(points)} "
                         f"and {np.shape(heatmaps)}")
    crop_points = p[:, :2] / HEATMAP_SIZE * size
    raw = float(h.reshape(68, -1).max(axis=1).mean())
    return crop_points, _mapped_score(raw, SCORE_RANGES["2dfan4"])


def decode_peppa_wutz(prediction: np.ndarray, size: int = LANDMARKER_SIZE) -> tuple[np.ndarray, float]:
    """68 x 3 values (``x, y, confidence``) -> ``(68, 2)`` float64 crop pixels and the score."""
    array = np.asarray(prediction, np.float64)
    if array.size != 68 * 3:
        raise ValueError(f"peppa_wutz: expected 204 values (68 x 3), got shape {array.shape}")
    rows = array.reshape(68, 3)
    return rows[:, :2] / HEATMAP_SIZE * size, _mapped_score(float(rows[:, 2].mean()), SCORE_RANGES["peppa_wutz"])


def to_frame(crop_points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Crop pixels -> frame pixels through the inverse of ``matrix``; ``(68, 2)`` float32."""
    inverse = cv2.invertAffineTransform(np.asarray(matrix, np.float64))
    pts = np.asarray(crop_points, np.float64)
    return (pts @ inverse[:, :2].T + inverse[:, 2]).astype(np.float32)


def output_layout(output_count: int) -> str:
    """``2dfan4`` for two outputs (points and heatmaps), ``peppa_wutz`` for one."""
    if output_count == 2:
        return "2dfan4"
    if output_count == 1:
        return "peppa_wutz"
    raise ValueError(f"{output_count} outputs: neither 2dfan4's (points, heatmaps) nor peppa_wutz's (one)")


def fit_landmarks(rgb8: np.ndarray, rect: Sequence[float], run: Callable[[np.ndarray], Sequence[np.ndarray]],
                  layout: str, size: int = LANDMARKER_SIZE) -> FittedLandmarks:
    """68 points of the face in box ``rect`` of an ``(H, W, 3)`` uint8 RGB frame; ``run`` maps the
    ``(1, 3, size, size)`` input to the model's outputs."""
    matrix = crop_matrix(rect, size)
    outputs = run(landmarker_input(rgb8, matrix, size))
    if layout == "2dfan4":
        crop_points, score = decode_2dfan4(outputs[0], outputs[1], size)
    elif layout == "peppa_wutz":
        crop_points, score = decode_peppa_wutz(outputs[0], size)
    else:
        raise ValueError(f"unknown landmarker layout {layout!r} (expected {', '.join(LAYOUTS)})")
    return FittedLandmarks(to_frame(crop_points, matrix), score)


class OnnxLandmarker:
    """A FaceFusion-format 68-point landmarker ONNX file on a device.

    Args:
        path: the ``.onnx`` file.
        device: ``auto | cpu | cuda[:N] | mps``.
        name: the registry name (``2dfan4``, ``peppa_wutz``).

    Raises:
        OnnxModelError: not loadable, not the ``input (1, 3, 256, 256)`` input, or outputs of neither layout.
    """

    size = LANDMARKER_SIZE

    def __init__(self, path: str | Path, device: str = "auto", name: str = "") -> None:
        self.path = Path(path)
        self.session = open_session(self.path, device, expected_inputs=LANDMARKER_INPUTS)
        try:
            self.layout = output_layout(len(self.session.get_outputs()))
        except ValueError as exc:
            raise OnnxModelError(f"{self.path}: {exc}") from None
        self.name = name or self.path.stem

    def _run(self, batch: np.ndarray) -> list[np.ndarray]:
        return run_session(self.session, {"input": batch})

    def fit(self, rgb8: np.ndarray, rect: Sequence[float]) -> FittedLandmarks:
        """68 points (frame pixels) and score of the face in ``rect`` (``x0, y0, x1, y1``)."""
        return fit_landmarks(rgb8, rect, self._run, self.layout)
