"""The mask toolkit: face outlines rasterised, distances to a region's edge, the soft edge and its shift.

Every mask lives on a crop grid ``(h, w)``: hard masks are uint8 0/1, distances float32 pixels (measured
between pixel centres, Euclidean), soft masks float32 in [0, 1]. A soft edge is the smoothstep of the
inside distance, exactly 0 on and outside a region's edge; feather widens that ramp and erode (> 0) or
dilate (< 0) moves the edge, both in pixels here (the controls give them as fractions of the face size).
"""

from __future__ import annotations

import cv2
import numpy as np

from ..faces.geometry import BROWS, EYES, face_size

MAX_DISTANCE = 4096.0  # stored distances are clipped to +-this (px), which float16 holds
_SUB = 4  # polygon rasterisation sub-pixel bits


def polygon_mask(shape_hw: tuple[int, int], polygon: np.ndarray) -> np.ndarray:
    """Hard (h, w) uint8 0/1 rasterisation of a (k, 2) polygon (pixel centres, 1/16 px precision)."""
    m = np.zeros(shape_hw, np.uint8)
    pts = np.round(np.asarray(polygon, np.float64) * (1 << _SUB)).astype(np.int32)
    cv2.fillPoly(m, [pts], 1, lineType=cv2.LINE_8, shift=_SUB)
    return m


def forehead_points(landmarks: np.ndarray, height: float | np.ndarray) -> np.ndarray:
    """The 10 brow points pushed up (away from the eyes, along the face's vertical axis) by
    ``height`` x face size (a scalar, or one height per brow point). (10, 2) float64."""
    p = np.asarray(landmarks, np.float64)
    eye_c = p[EYES].mean(0)
    chin = p[8]
    up = eye_c - chin
    up /= np.linalg.norm(up) + 1e-9
    hgt = np.broadcast_to(np.asarray(height, np.float64), (len(BROWS),))[:, None]
    return p[BROWS] + up * hgt * face_size(p)


def face_polygon(landmarks: np.ndarray, forehead: float | np.ndarray, convex: bool = True) -> np.ndarray:
    """Face outline: the jaw line closed over the raised brows; (k, 2) float64.

    ``convex`` returns the convex hull; otherwise the outline follows the raised brows (jaw 0..16,
    then brows 26..17), so a lower forehead band on one side stays low there."""
    p = np.asarray(landmarks, np.float64)
    top = forehead_points(p, forehead)
    if not convex:
        return np.concatenate([p[:17], top[::-1]])
    pts = np.concatenate([p[:17], top])
    return cv2.convexHull(pts.astype(np.float32)).reshape(-1, 2).astype(np.float64)


def inside_distance(hard: np.ndarray) -> np.ndarray:
    """(h, w) float32 distance (px) from each pixel of ``hard`` (uint8 0/1) to the nearest pixel outside it,
    the crop border counting as outside; 0 outside."""
    padded = cv2.copyMakeBorder(hard, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    return cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]


def signed_distance(hard: np.ndarray) -> np.ndarray:
    """(h, w) float32 distance to the edge of ``hard`` (uint8 0/1): positive inside (as
    :func:`inside_distance`), negative outside (minus the distance to the nearest pixel inside; the crop
    border does not count as inside). ``-MAX_DISTANCE`` everywhere when ``hard`` is empty."""
    inside = inside_distance(hard)
    if not hard.any():
        return np.full(hard.shape, -MAX_DISTANCE, np.float32)
    padded = cv2.copyMakeBorder(1 - hard, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=1)
    outside = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
    return inside - outside


def ramp(distance: np.ndarray, width: float) -> np.ndarray:
    """The soft edge: (h, w) float32 smoothstep of the signed ``distance`` over ``width`` px, exactly 0 on
    and outside the edge (distance <= 0.5 px) and 1 from ``width + 0.5`` px inside; a hard 0/1 edge when
    ``width`` <= 0.5."""
    if width <= 0.5:
        return (distance > 0).astype(np.float32)
    t = np.clip((distance - 0.5) * np.float32(1.0 / width), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def shifted_edge(distance: np.ndarray, shift_px: float, limit: np.ndarray | None = None) -> np.ndarray:
    """(h, w) float32 signed edge distance with the edge moved ``shift_px`` inward (> 0 erodes, < 0
    dilates); with ``limit`` (a distance inside the zone the edge may reach, 0 outside it) a dilated edge
    never passes that zone's own edge."""
    d = np.asarray(distance).astype(np.float32)
    if shift_px == 0.0:
        return d
    d = d - np.float32(shift_px)
    return d if limit is None else np.minimum(d, np.asarray(limit).astype(np.float32))
