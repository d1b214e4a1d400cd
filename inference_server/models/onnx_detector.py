"""Neural face detectors in FaceFusion's ONNX formats: ``retinaface_10g``, ``scrfd_2.5g`` and ``yoloface_8n``.

Contracts (facts from FaceFusion 3.x, ``facefusion/face_detector.py`` with ``face_helper.py``
``create_static_anchors`` / ``distance_to_bounding_box`` / ``distance_to_face_landmark_5`` / ``apply_nms`` /
``get_nms_threshold`` and the ``face_detector_score`` default in ``program.py``; the code here is our own):

- Input ``input`` ``(1, 3, 640, 640)`` float32, **BGR** channel order (FaceFusion's frames are OpenCV BGR).
  The frame is shrunk (never enlarged) to fit 640 x 640 keeping its aspect, placed at the top-left corner
  and the rest is zero (before normalisation). Boxes and points scale back by ``frame / resized`` per axis.
- ``retinaface_10g`` and ``scrfd_2.5g`` (the *anchor* layout, InsightFace exports): input ``(x - 127.5) /
  128``; nine outputs in order: scores for strides 8, 16, 32 (``(N_s, 1)``), box distances for the same
  strides (``(N_s, 4)``: left, top, right, bottom in stride units) and five-point offsets (``(N_s, 10)``: x, y
  pairs in stride units). ``N_s = (640 / s)^2 * 2``: cells in row-major order, two anchors per cell, anchor
  centre ``(column * s, row * s)``.
- ``yoloface_8n`` (the *yolo* layout): input ``x / 255``; one output ``(1, 20, N)``: per candidate centre x,
  centre y, width, height (input pixels), score, then five points as ``x, y, visibility`` triples.
- A candidate is kept when its score is at least 0.5 (FaceFusion's default ``face_detector_score``; the yolo
  path keeps scores strictly above it), then greedy non-maximum suppression with IoU 0.4 (FaceFusion's
  threshold for one model at one angle), best score first.

The five points are in insightface order (image-left eye, image-right eye, nose tip, image-left and
image-right mouth corner), the order of :func:`~.alignment.points5_from_68`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .onnx_session import OnnxModelError, open_session, run_session

DETECTOR_SIZE = 640
DETECTOR_INPUTS = {"input": (1, 3, DETECTOR_SIZE, DETECTOR_SIZE)}
ANCHOR_STRIDES: tuple[int, ...] = (8, 16, 32)
ANCHORS_PER_CELL = 2
SCORE_THRESHOLD = 0.5
NMS_IOU = 0.4
YOLO_CHANNELS = 20  # 4 box + 1 score + 5 x (x, y, visibility)

LAYOUTS: tuple[str, ...] = ("anchor", "yolo")


@dataclass(frozen=True)
class Candidates:
    """Decoded detector output in one pixel frame.

    Attributes:
        boxes: ``(K, 4)`` float64 ``x0, y0, x1, y1``.
        scores: ``(K,)`` float64.
        points: ``(K, 5, 2)`` float64 five-point ``x, y``.
    """

    boxes: np.ndarray
    scores: np.ndarray
    points: np.ndarray

    @classmethod
    def empty(cls) -> Candidates:
        return cls(np.zeros((0, 4)), np.zeros((0,)), np.zeros((0, 5, 2)))

    def take(self, keep: Sequence[int] | np.ndarray) -> Candidates:
        index = np.asarray(keep, dtype=np.int64)
        return Candidates(self.boxes[index], self.scores[index], self.points[index])

    def scaled(self, sx: float, sy: float) -> Candidates:
        """The same candidates with x multiplied by ``sx`` and y by ``sy``."""
        return Candidates(self.boxes * np.array([sx, sy, sx, sy]), self.scores.copy(),
                          self.points * np.array([sx, sy]))


@dataclass(frozen=True)
class DetectedFace:
    """One face found by a neural detector, in frame pixels.

    Attributes:
        rect: ``(x0, y0, x1, y1)`` box.
        score: detector confidence in [0, 1].
        points5: ``(5, 2)`` float64 five points (order in the module docstring).
    """

    rect: tuple[float, float, float, float]
    score: float
    points5: np.ndarray


# -- pre-processing ------------------------------------------------------------------------------------------

def letterbox(rgb8: np.ndarray, size: int = DETECTOR_SIZE) -> tuple[np.ndarray, tuple[float, float]]:
    """The frame as the detector sees it, before normalisation.

    Args:
        rgb8: ``(H, W, 3)`` uint8 RGB.
        size: the square input side.

    Returns:
        ``(size, size, 3)`` float32 **BGR** 0..255, the frame shrunk to fit (INTER_AREA; never enlarged) at the
        top-left and zeros elsewhere; and ``(sx, sy)``, the factors from input pixels back to frame pixels.
    """
    image = np.asarray(rgb8)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
    h, w = image.shape[:2]
    scale = min(1.0, size / h, size / w)
    rw, rh = max(1, int(w * scale)), max(1, int(h * scale))
    resized = image if (rw, rh) == (w, h) else cv2.resize(image, (rw, rh), interpolation=cv2.INTER_AREA)
    canvas = np.zeros((size, size, 3), np.float32)
    canvas[:rh, :rw] = resized[..., ::-1]
    return canvas, (w / rw, h / rh)


def normalise(canvas_bgr: np.ndarray, layout: str) -> np.ndarray:
    """``(S, S, 3)`` BGR 0..255 -> ``(1, 3, S, S)`` float32 input of a ``layout`` model."""
    if layout == "anchor":
        values = (canvas_bgr - 127.5) / 128.0
    elif layout == "yolo":
        values = canvas_bgr / 255.0
    else:
        raise ValueError(f"unknown detector layout {layout!r} (expected {', '.join(LAYOUTS)})")
    return np.ascontiguousarray(values.transpose(2, 0, 1)[None], dtype=np.float32)


# -- post-processing -----------------------------------------------------------------------------------------

def anchor_centres(input_hw: tuple[int, int], stride: int, per_cell: int = ANCHORS_PER_CELL) -> np.ndarray:
    """``(rows * cols * per_cell, 2)`` float64 anchor centres ``(column * stride, row * stride)`` of a stride's
    feature map, cells in row-major order, each repeated ``per_cell`` times."""
    rows, cols = input_hw[0] // stride, input_hw[1] // stride
    r, c = np.mgrid[:rows, :cols]
    centres = np.stack([c.ravel(), r.ravel()], axis=1).astype(np.float64) * stride
    return np.repeat(centres, per_cell, axis=0)


def decode_anchor_outputs(outputs: Sequence[np.ndarray], input_hw: tuple[int, int] = (DETECTOR_SIZE, DETECTOR_SIZE),
                          threshold: float = SCORE_THRESHOLD, strides: Sequence[int] = ANCHOR_STRIDES) -> Candidates:
    """Candidates (input pixels) of a retinaface/scrfd output list (layout in the module docstring) whose
    score is at least ``threshold``.

    Raises:
        ValueError: not ``3 * len(strides)`` outputs, or sizes that do not match the anchors.
    """
    count = len(strides)
    if len(outputs) != 3 * count:
        raise ValueError(f"anchor detector: expected {3 * count} outputs, got {len(outputs)}")
    boxes, scores, points = [], [], []
    for i, stride in enumerate(strides):
        anchors = anchor_centres(input_hw, stride)
        n = len(anchors)
        score = np.asarray(outputs[i], np.float64).reshape(-1)
        dist = np.asarray(outputs[i + count], np.float64).reshape(-1, 4)
        kps = np.asarray(outputs[i + 2 * count], np.float64).reshape(-1, 10)
        if not len(score) == len(dist) == len(kps) == n:
            raise ValueError(f"anchor detector: stride {stride} outputs have {len(score)}, {len(dist)}, {len(kps)} "
                             f"rows; {n} anchors expected")
        keep = np.flatnonzero(score >= threshold)
        a, d = anchors[keep], dist[keep] * stride
        boxes.append(np.column_stack([a[:, 0] - d[:, 0], a[:, 1] - d[:, 1], a[:, 0] + d[:, 2], a[:, 1] + d[:, 3]]))
        scores.append(score[keep])
        points.append(a[:, None, :] + kps[keep].reshape(-1, 5, 2) * stride)
    return Candidates(np.concatenate(boxes), np.concatenate(scores), np.concatenate(points))


def decode_yolo_output(output: np.ndarray, threshold: float = SCORE_THRESHOLD) -> Candidates:
    """Candidates (input pixels) of a yoloface ``(1, 20, N)`` output whose score is above ``threshold``.

    Raises:
        ValueError: the output does not have 20 channels.
    """
    array = np.asarray(output, np.float64)
    array = array.reshape(array.shape[-2], array.shape[-1]) if array.ndim == 3 else array
    if array.ndim != 2 or array.shape[0] != YOLO_CHANNELS:
        raise ValueError(f"yolo detector: expected an output (1, {YOLO_CHANNELS}, N), got {np.shape(output)}")
    rows = array.T
    keep = np.flatnonzero(rows[:, 4] > threshold)
    rows = rows[keep]
    cx, cy, w, h = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
    boxes = np.column_stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
    points = rows[:, 5:].reshape(-1, 5, 3)[:, :, :2]
    return Candidates(boxes, rows[:, 4].copy(), points)


def box_iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of one ``(4,)`` box with ``(K, 4)`` boxes (areas without +1)."""
    ix = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0.0, None)
    iy = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0.0, None)
    inter = ix * iy
    area = max(0.0, float(box[2] - box[0])) * max(0.0, float(box[3] - box[1]))
    areas = np.clip(others[:, 2] - others[:, 0], 0.0, None) * np.clip(others[:, 3] - others[:, 1], 0.0, None)
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def non_maximum_suppression(boxes: np.ndarray, scores: np.ndarray, iou: float = NMS_IOU) -> list[int]:
    """Indices kept by greedy NMS: best score first (ties: lower index first); a box whose IoU with a kept
    box exceeds ``iou`` is dropped."""
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    kept: list[int] = []
    for index in order:
        if not kept or float(box_iou(boxes[index], boxes[kept]).max()) <= iou:
            kept.append(index)
    return kept


def output_layout(output_shapes: Sequence[Sequence[object]]) -> str:
    """``anchor`` for nine outputs, ``yolo`` for one output of 20 channels.

    Raises:
        ValueError: any other output list.
    """
    if len(output_shapes) == 3 * len(ANCHOR_STRIDES):
        return "anchor"
    if len(output_shapes) == 1 and len(output_shapes[0]) == 3 and output_shapes[0][1] == YOLO_CHANNELS:
        return "yolo"
    raise ValueError(f"outputs {list(map(list, output_shapes))} are neither the retinaface/scrfd layout (nine) nor "
                     f"yoloface's (one (1, {YOLO_CHANNELS}, N))")


def detect_faces(rgb8: np.ndarray, run: Callable[[np.ndarray], Sequence[np.ndarray]], layout: str, threshold: float = SCORE_THRESHOLD,
                 iou: float = NMS_IOU, size: int = DETECTOR_SIZE) -> list[DetectedFace]:
    """Faces in a frame: letterbox, run the model, decode, scale back to frame pixels, suppress overlaps.

    Args:
        rgb8: ``(H, W, 3)`` uint8 RGB frame.
        run: the model: ``(1, 3, size, size)`` float32 -> its output list.
        layout: ``anchor`` or ``yolo``.

    Returns:
        Faces in frame pixels, best score first.
    """
    canvas, (sx, sy) = letterbox(rgb8, size)
    outputs = run(normalise(canvas, layout))
    found = (decode_anchor_outputs(outputs, (size, size), threshold) if layout == "anchor"
             else decode_yolo_output(outputs[0], threshold)).scaled(sx, sy)
    kept = found.take(non_maximum_suppression(found.boxes, found.scores, iou))
    return [DetectedFace((float(b[0]), float(b[1]), float(b[2]), float(b[3])), float(s), p)
            for b, s, p in zip(kept.boxes, kept.scores, kept.points)]


class OnnxFaceDetector:
    """A FaceFusion-format face detector ONNX file on a device.

    Args:
        path: the ``.onnx`` file.
        device: ``auto | cpu | cuda[:N] | mps``.
        name: the registry name reported as the face's detector (``scrfd_2.5g``, ...).
        threshold: score threshold (FaceFusion's default 0.5).

    Raises:
        OnnxModelError: not loadable, not the ``input (1, 3, 640, 640)`` input, or outputs of neither layout.
    """

    size = DETECTOR_SIZE

    def __init__(self, path: str | Path, device: str = "auto", name: str = "", threshold: float = SCORE_THRESHOLD) -> None:
        self.path = Path(path)
        self.session = open_session(self.path, device, expected_inputs=DETECTOR_INPUTS)
        try:
            self.layout = output_layout([o.shape for o in self.session.get_outputs()])
        except ValueError as exc:
            raise OnnxModelError(f"{self.path}: {exc}") from None
        self.name = name or self.path.stem
        self.threshold = threshold

    def _run(self, batch: np.ndarray) -> list[np.ndarray]:
        return run_session(self.session, {"input": batch})

    def detect(self, rgb8: np.ndarray) -> list[DetectedFace]:
        """Faces in an ``(H, W, 3)`` uint8 RGB frame, frame pixels, best score first."""
        return detect_faces(rgb8, self._run, self.layout, self.threshold)
