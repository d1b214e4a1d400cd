"""Soft face regions from the 68 landmarks, for per-region blend weights at composite time.

The regions partition the image: at every pixel the masks of :data:`REGION_NAMES` sum to 1, ``skin``
taking whatever the named features leave. Each feature starts as a hard shape drawn from its landmarks
(iBUG groups: jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67); its field is exactly 1 on
the shape and a small core margin around it, then falls to exactly 0 along a smoothstep of the distance
to the shape. Where features overlap, the earlier one in :data:`_PRIORITY` owns the overlap
(``m_r = a_r * prod_{q before r} (1 - a_q)``), which keeps the sum at 1 without hard seams.

The fields are computed on a grid a few times coarser than the image (they vary over many pixels
anyway) and interpolated up: exact zeros stay exact zeros, and the coarse cells are at most half the
smallest core margin, so a feature's own landmarks stay inside its exact core.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np
from facebridge import schema

from .masks import forehead_points

REGION_NAMES = schema.REGION_NAMES
"""The regions an artist weighs (the settings schema's), in the order of the region-label overlay."""


@dataclass(frozen=True)
class _Region:
    name: str
    core: float   # the region is 1 up to this far outside its shape, x face size
    soft: float   # and falls smoothly to 0 over this much further


# owners of overlaps first; skin is the remainder
_PRIORITY = (
    _Region("mouth", 0.03, 0.05),
    _Region("eyes", 0.02, 0.05),
    _Region("brows", 0.0, 0.05),
    _Region("nose", 0.0, 0.05),
    _Region("jaw", 0.0, 0.08),
    _Region("cheeks", 0.0, 0.08),
    _Region("forehead", 0.0, 0.08),
)
_SUB = 4


def _poly(canvas: np.ndarray, pts: np.ndarray, thickness: int = 0) -> None:
    p = np.round(np.asarray(pts, np.float64) * (1 << _SUB)).astype(np.int32)
    cv2.fillPoly(canvas, [p], 1, lineType=cv2.LINE_8, shift=_SUB)
    if thickness > 0:
        cv2.polylines(canvas, [p], True, 1, thickness=thickness, lineType=cv2.LINE_8, shift=_SUB)


def _hull(p: np.ndarray) -> np.ndarray:
    return cv2.convexHull(np.asarray(p, np.float32)).reshape(-1, 2)


def _shapes(shape_hw: tuple[int, int], p: np.ndarray, size: float) -> dict[str, np.ndarray]:
    """Hard uint8 shape of each named region (``p`` and ``size`` on the grid of ``shape_hw``)."""
    out: dict[str, np.ndarray] = {}

    def canvas() -> np.ndarray:
        return np.zeros(shape_hw, np.uint8)

    def th(frac: float) -> int:
        return max(1, int(round(frac * size)))

    m = canvas()  # lips and whatever is between them
    _poly(m, _hull(p[48:60]), th(0.01))
    out["mouth"] = m
    m = canvas()  # the eyes, with a minimum thickness so closed eyes keep a region
    for idx in (slice(36, 42), slice(42, 48)):
        _poly(m, p[idx], th(0.03))
    out["eyes"] = m
    m = canvas()
    for idx in (slice(17, 22), slice(22, 27)):
        pts = np.round(p[idx] * (1 << _SUB)).astype(np.int32)
        cv2.polylines(m, [pts], False, 1, thickness=th(0.05), lineType=cv2.LINE_8, shift=_SUB)
    out["brows"] = m
    m = canvas()  # bridge and tip, widened to the nostril wings
    _poly(m, _hull(p[27:36]), th(0.04))
    out["nose"] = m
    m = canvas()  # chin and lower jaw below the mouth, plus a band along the jaw line
    _poly(m, np.concatenate([p[3:14], p[[54, 55, 56, 57, 58, 59, 48]]]))
    pts = np.round(p[2:15] * (1 << _SUB)).astype(np.int32)
    cv2.polylines(m, [pts], False, 1, thickness=th(0.1), lineType=cv2.LINE_8, shift=_SUB)
    out["jaw"] = m
    m = canvas()  # between eye, nose wing, mouth corner and jaw, each side
    _poly(m, p[[1, 2, 3, 4, 48, 31, 40, 41, 36]])
    _poly(m, p[[15, 14, 13, 12, 54, 35, 47, 46, 45]])
    out["cheeks"] = m
    m = canvas()  # everything above the brows
    _poly(m, np.concatenate([forehead_points(p, 0.02), forehead_points(p, 0.8)[::-1]]))
    out["forehead"] = m
    return out


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _coarse_fields(shape_hw: tuple[int, int], landmarks: np.ndarray, face_size_px: float
                   ) -> tuple[np.ndarray, tuple[int, int]]:
    """(hl, wl, 7) float32 region fields ``a_r`` in :data:`_PRIORITY` order on a coarse grid, and its size.

    ``a_r = 1 - smoothstep((distance to the shape - core) / soft)``: exactly 1 on the shape and ``core``
    around it, exactly 0 beyond ``core + soft``."""
    h, w = shape_hw
    size = max(float(face_size_px), 1.0)
    # coarse pixels at most half the smallest core margin (interpolating up loses at most one of them)
    # and a third of the smallest soft width
    cores = [r.core for r in _PRIORITY if r.core > 0]
    factor = int(np.clip(min(min(cores) / 2.0, min(r.soft for r in _PRIORITY) / 3.0) * size, 1, 8))
    hl, wl = max(1, -(-h // factor)), max(1, -(-w // factor))
    sx, sy = wl / w, hl / h
    p = (np.asarray(landmarks, np.float64) + 0.5) * np.array([sx, sy]) - 0.5
    s = size * sx
    shapes = _shapes((hl, wl), p, s)
    fields = np.empty((hl, wl, len(_PRIORITY)), np.float32)
    for i, r in enumerate(_PRIORITY):
        outside = cv2.copyMakeBorder(1 - shapes[r.name], 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=1)
        dist = cv2.distanceTransform(outside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
        fields[..., i] = 1.0 - _smoothstep((dist - r.core * s) / max(r.soft * s, 1e-3))
    return fields, (hl, wl)


def _partition(fields: np.ndarray) -> np.ndarray:
    """(..., 8) masks (REGION order of _PRIORITY, then skin) from (..., 7) fields; sums to 1."""
    out = np.empty(fields.shape[:-1] + (len(_PRIORITY) + 1,), np.float32)
    rest = np.ones(fields.shape[:-1], np.float32)
    for i in range(len(_PRIORITY)):
        m = fields[..., i] * rest
        out[..., i] = m
        rest = rest - m
    out[..., -1] = np.maximum(rest, 0.0)
    return out


def _upsample(a: np.ndarray, shape_hw: tuple[int, int]) -> np.ndarray:
    h, w = shape_hw
    if a.shape[:2] == (h, w):
        return a
    return cv2.resize(a, (w, h), interpolation=cv2.INTER_LINEAR)


def region_masks(shape_hw: tuple[int, int], landmarks: np.ndarray, face_size_px: float) -> dict[str, np.ndarray]:
    """Soft (h, w) float32 masks in [0, 1] of every region in :data:`REGION_NAMES`.

    They partition the image: their sum is 1 at every pixel (to float rounding), ``skin`` being the
    rest, so weights all 1 give back the full face mask.

    Args:
        shape_hw: the grid (crop) size.
        landmarks: (68, 2) landmarks on that grid.
        face_size_px: face size in px (longest side of the landmark box), sets the softness.
    """
    fields, _ = _coarse_fields(shape_hw, landmarks, face_size_px)
    fine = _upsample(fields, shape_hw)
    if fine.ndim == 2:
        fine = fine[..., None]
    fine = np.where(fine > 1.0 - 1e-6, 1.0, np.clip(fine, 0.0, 1.0)).astype(np.float32)
    parts = _partition(fine)
    names = [r.name for r in _PRIORITY] + ["skin"]
    by_name = {n: np.ascontiguousarray(parts[..., i]) for i, n in enumerate(names)}
    return {n: by_name[n] for n in REGION_NAMES}


def region_weight_map(shape_hw: tuple[int, int], landmarks: np.ndarray, face_size_px: float,
                      weights: Mapping[str, float]) -> np.ndarray:
    """(h, w) float32 ``sum_r weight_r * mask_r`` (missing names weigh 1), computed on the coarse grid
    and interpolated up. It is exactly 0 where regions of weight 0 cover a pixel fully, and exactly 1
    everywhere when all weights are 1."""
    w_of = [float(weights.get(r.name, 1.0)) for r in _PRIORITY] + [float(weights.get("skin", 1.0))]
    if all(v == 1.0 for v in w_of):
        return np.ones(shape_hw, np.float32)
    fields, _ = _coarse_fields(shape_hw, landmarks, face_size_px)
    parts = _partition(fields)
    loss = np.asarray([1.0 - v for v in w_of], np.float32)
    coarse = 1.0 - parts @ loss
    coarse = np.where(coarse < 1e-6, 0.0, np.clip(coarse, 0.0, 1.0)).astype(np.float32)
    return np.clip(_upsample(coarse, shape_hw), 0.0, 1.0)


PARSED_REGIONS = ("eyes", "brows", "nose", "mouth")


def refined_region_weight_map(shape_hw: tuple[int, int], landmarks: np.ndarray, face_size_px: float,
                              weights: Mapping[str, float], parsed: Mapping[str, np.ndarray]) -> np.ndarray:
    """:func:`region_weight_map` with a face parser's masks for the regions it knows.

    ``parsed`` holds soft (h, w) float32 [0, 1] masks of some of :data:`PARSED_REGIONS` (from a parser's
    labels). Those regions take the parser's outline; the rest of the face keeps the landmark partition,
    where the parsed regions count as skin::

        sum_p weight_p * P_p + (1 - sum_p P_p) * landmark_map(parsed regions weighted as skin)

    Still exactly 0 inside a fully covered region of weight 0, and exactly 1 everywhere when all weights
    are 1.
    """
    skin = float(weights.get("skin", 1.0))
    rest = region_weight_map(shape_hw, landmarks, face_size_px,
                             {**weights, **{name: skin for name in parsed}})
    if not parsed:
        return rest
    total = np.zeros(shape_hw, np.float32)
    covered = np.zeros(shape_hw, np.float32)
    for name, mask in parsed.items():
        m = np.clip(np.asarray(mask, np.float32), 0.0, 1.0)
        total += np.float32(weights.get(name, 1.0)) * m
        covered += m
    covered = np.clip(covered, 0.0, 1.0)
    out = total + (1.0 - covered) * rest
    return np.where(out < 1e-6, 0.0, np.clip(out, 0.0, 1.0)).astype(np.float32)


def soft_parsed_masks(labels_masks: Mapping[str, np.ndarray], face_size_px: float) -> dict[str, np.ndarray]:
    """Soften a parser's hard region masks by 1% of the face size (their edges are pixel-exact labels)."""
    sigma = max(0.5, 0.01 * face_size_px)
    return {name: np.clip(cv2.GaussianBlur(np.asarray(m, np.float32), (0, 0), sigma), 0.0, 1.0)
            for name, m in labels_masks.items() if name in PARSED_REGIONS}
