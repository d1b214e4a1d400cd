"""One frame of the embedded face swap: detect, crop, convert, swap, convert back, composite, check.

Convention:
    - ``pixels``: ``(H, W, C)`` float32 scene-linear plate (data window), channels in file order.
    - Detection runs on an 8-bit display-referred proxy of the whole frame; only face crops travel the
      full colour round trip into the model space and back. Every pixel outside the final masks, and
      every channel other than R, G, B, is returned bit-exact.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from ..faces.dlib_models import DlibFaceModels
from ..faces.pose import head_pose
from ..faces.types import FaceDetection
from ..plates.colour import ColourSpace
from ..swap import SourceFace, SwapParams, choose_source, swap_face
from .composite import composite_face
from .crops import Box, exposure_scale, face_crop_box


@dataclass(frozen=True)
class SwapSettings:
    """Everything besides the pixels and the sources that decides a frame's result."""

    blend: float = 1.0
    colourspace: ColourSpace = field(default_factory=ColourSpace)
    swap: SwapParams = field(default_factory=SwapParams)
    crop_margin: float = 0.6
    max_working_side: int = 1024  # larger face crops are swapped at this size and scaled back up
    min_detection_score: float = 0.25  # HOG margin; real faces score ~0.3-2.8, badges and patterns ~0.1
    quality_checks: bool = True


@dataclass(frozen=True)
class FaceReport:
    index: int
    swapped: bool
    source_label: str
    box: tuple[float, float, float, float]
    pose: tuple[float, float, float]
    identity_distance: float = float("nan")        # output face -> its source
    identity_distance_plate: float = float("nan")  # plate face -> the same source


@dataclass(frozen=True)
class FrameOutcome:
    pixels: np.ndarray
    faces: tuple[FaceReport, ...]
    timings_ms: dict[str, float]

    @property
    def faces_swapped(self) -> int:
        return sum(f.swapped for f in self.faces)


class _Stopwatch:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.timings[stage] = self.timings.get(stage, 0.0) + (now - self._t) * 1000.0
        self._t = now


def _identity_distance(models: DlibFaceModels, rgb8: np.ndarray, landmarks: np.ndarray, source: SourceFace) -> float:
    return float(np.linalg.norm(models.embed(rgb8, landmarks) - source.embedding))


def working_factor(crop_hw: tuple[int, int], max_side: int) -> float:
    """Scale (<= 1) that brings a crop's long side down to ``max_side``."""
    return min(1.0, max_side / max(crop_hw))


def resize_to(image: np.ndarray, size_wh: tuple[int, int], shrink: bool) -> np.ndarray:
    """Area-average when shrinking, cubic when enlarging (float32 in, float32 out)."""
    return cv2.resize(image, size_wh, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def swap_crop(
    crop_linear: np.ndarray,
    landmarks: np.ndarray,
    source: SourceFace,
    settings: SwapSettings,
) -> tuple[np.ndarray, np.ndarray]:
    """Swap the face in one linear crop; returns ``(face_linear (h, w, 3), mask (h, w))`` at the crop's size.

    The crop is exposure-normalised (HDR faces), area-downscaled in linear light when its long side
    exceeds ``settings.max_working_side`` (the swap's cost grows with the square of the crop size while
    its detail is bounded by the source photo), converted to the model space, swapped, converted back
    and scaled up again.

    Args:
        crop_linear: ``(h, w, 3)`` float32 scene-linear plate crop (may hold NaN/Inf/HDR values).
        landmarks: ``(68, 2)`` float32 in crop pixels.
    """
    h, w = crop_linear.shape[:2]
    scale = exposure_scale(crop_linear)
    clean = np.nan_to_num(crop_linear, nan=0.0, posinf=scale, neginf=0.0) / np.float32(scale)
    factor = working_factor((h, w), settings.max_working_side)
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    if factor < 1.0:
        clean = resize_to(clean, size, shrink=True)
        landmarks = (landmarks + 0.5) * np.array([size[0] / w, size[1] / h], np.float32) - 0.5
    result = swap_face(settings.colourspace.to_model(clean), landmarks, source, settings.swap)
    face = settings.colourspace.from_model(result.face) * np.float32(scale)
    mask = result.mask
    if factor < 1.0:
        face = resize_to(face, (w, h), shrink=False)
        mask = np.clip(cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)
    return face, mask


def swap_plate(
    pixels: np.ndarray,
    rgb_index: list[int],
    sources: Sequence[SourceFace],
    models: DlibFaceModels,
    settings: SwapSettings,
) -> FrameOutcome:
    """Swap every face found in ``pixels`` with the best-matching source; see the module docstring."""
    clock = _Stopwatch()
    rgb = pixels[..., rgb_index]
    proxy = settings.colourspace.to_proxy8(rgb)
    clock.lap("proxy")
    detections = [d for d in models.detect(proxy) if d.score >= settings.min_detection_score]
    clock.lap("detect")
    out = pixels.copy()
    reports: list[FaceReport] = []
    for index, det in enumerate(detections):
        box = face_crop_box(det.landmarks, rgb.shape[:2], settings.crop_margin)
        offset = np.array([box.x0, box.y0], np.float32)
        source = choose_source(sources, det.landmarks)
        clock.lap("prepare")
        face_linear, mask = swap_crop(out[box.slices][..., rgb_index], det.landmarks - offset, source, settings)
        clock.lap("swap")
        written = composite_face(out, pixels, rgb_index, box, face_linear, mask * np.float32(settings.blend))
        clock.lap("composite")
        report = FaceReport(
            index=index,
            swapped=written > 0,
            source_label=source.label,
            box=tuple(float(v) for v in det.rect),
            pose=head_pose(det.landmarks),
        )
        if settings.quality_checks:
            report = _with_identity(report, models, proxy, out, rgb_index, box, det, source, settings)
            clock.lap("qc")
        reports.append(report)
    return FrameOutcome(pixels=out, faces=tuple(reports), timings_ms=clock.timings)


def _with_identity(
    report: FaceReport,
    models: DlibFaceModels,
    proxy: np.ndarray,
    out: np.ndarray,
    rgb_index: list[int],
    box: Box,
    det: FaceDetection,
    source: SourceFace,
    settings: SwapSettings,
) -> FaceReport:
    """Measure the identity distances of the plate's and the output's face to ``source``."""
    out_crop8 = settings.colourspace.to_proxy8(out[box.slices][..., rgb_index])
    rect = det.rect
    local = (rect[0] - box.x0, rect[1] - box.y0, rect[2] - box.x0, rect[3] - box.y0)
    out_landmarks = models.landmarks(np.ascontiguousarray(out_crop8), local)
    return replace(
        report,
        identity_distance=_identity_distance(models, np.ascontiguousarray(out_crop8), out_landmarks, source),
        identity_distance_plate=_identity_distance(models, proxy, det.landmarks, source),
    )
