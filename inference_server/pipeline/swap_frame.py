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

import numpy as np

from ..faces.dlib_models import DlibFaceModels
from ..faces.pose import head_pose
from ..faces.types import FaceDetection
from ..plates.colour import ColourSpace, to_uint8
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
        crop_linear = out[box.slices][..., rgb_index]
        scale = exposure_scale(crop_linear)
        crop_model = settings.colourspace.to_model(crop_linear / scale)
        source = choose_source(sources, det.landmarks)
        clock.lap("prepare")
        result = swap_face(crop_model, det.landmarks - offset, source, settings.swap)
        clock.lap("swap")
        face_linear = settings.colourspace.from_model(result.face) * scale
        written = composite_face(out, pixels, rgb_index, box, face_linear, result.mask * np.float32(settings.blend))
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
    out_crop8 = to_uint8(settings.colourspace.to_model(out[box.slices][..., rgb_index]))
    rect = det.rect
    local = (rect[0] - box.x0, rect[1] - box.y0, rect[2] - box.x0, rect[3] - box.y0)
    out_landmarks = models.landmarks(np.ascontiguousarray(out_crop8), local)
    return replace(
        report,
        identity_distance=_identity_distance(models, np.ascontiguousarray(out_crop8), out_landmarks, source),
        identity_distance_plate=_identity_distance(models, proxy, det.landmarks, source),
    )
