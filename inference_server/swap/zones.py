"""Where the classical swap may act, from the landmarks and the two faces' lightness: the allowed zone,
skin, the hairline above the brows and hair over the face's sides.

Hard masks are (h, w) uint8 0/1, soft ones (h, w) float32 in [0, 1], on the target crop grid. The mask
toolkit they are built from (polygons, face outline) is :mod:`inference_server.compositing.masks`.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..compositing.masks import face_polygon, forehead_points, polygon_mask
from ..faces.geometry import BROWS, face_size


def allowed_zone(shape_hw: tuple[int, int], landmarks: np.ndarray, forehead: float, grow: float) -> np.ndarray:
    """Hard (h, w) uint8 zone the swap may touch: the target face polygon grown by ``grow`` x face size."""
    p = np.asarray(landmarks, np.float64)
    hard = polygon_mask(shape_hw, face_polygon(p, forehead))
    k = int(2 * grow * face_size(p)) | 1
    if k > 1:
        hard = cv2.dilate(hard, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    return hard


def _window(shape_hw: tuple[int, int], points: np.ndarray, margin: int) -> tuple[int, int, int, int]:
    """``(y0, x0, y1, x1)``: the bounding box of ``points`` grown by ``margin`` px, clipped to the grid."""
    lo = np.floor(points.min(axis=0)).astype(int) - margin
    hi = np.ceil(points.max(axis=0)).astype(int) + margin + 1
    return (max(0, int(lo[1])), max(0, int(lo[0])), min(shape_hw[0], int(hi[1])), min(shape_hw[1], int(hi[0])))


def skin_mask(shape_hw: tuple[int, int], landmarks: np.ndarray, forehead: float = 0.0) -> np.ndarray:
    """Hard (h, w) uint8 mask of cheek/nose skin: the landmark hull shrunk by 6% of the face size,
    without the eyes, brows and lips (each grown by a few percent of the face size); with
    ``forehead`` > 0 also the band from just above the brows up to ``forehead`` x face size.

    Computed inside the window that holds every drawn shape plus the structuring elements' reach (the
    rest of the grid is 0): the same pixels as on the whole grid, because drawing is translation-exact
    for whole-pixel offsets and every pixel that can be non-zero sees only in-window neighbours."""
    p = np.asarray(landmarks, np.float64)
    s = face_size(p)
    e = int(0.12 * s) | 1
    k = int(0.06 * s) | 1
    band = np.concatenate([forehead_points(p, 0.06)[::-1], forehead_points(p, forehead)]) if forehead > 0 else None
    drawn = p if band is None else np.concatenate([p, band])
    y0, x0, y1, x1 = _window(shape_hw, drawn, e + k + max(1, int(0.06 * s)) + 2)
    out = np.zeros(shape_hw, np.uint8)
    if y1 <= y0 or x1 <= x0:
        return out
    shape = (y1 - y0, x1 - x0)
    q = p - np.array([x0, y0], np.float64)
    m = polygon_mask(shape, cv2.convexHull(q[:27].astype(np.float32)).reshape(-1, 2))
    # keep away from the outline, where background, hair and the jaw's shadow mix in
    m = np.asarray(cv2.erode(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (e, e))), np.uint8)
    holes = np.zeros(shape, np.uint8)
    for idx in (np.arange(36, 42), np.arange(42, 48), np.arange(48, 60)):
        holes |= polygon_mask(shape, cv2.convexHull(q[idx].astype(np.float32)).reshape(-1, 2))
    for idx in (np.arange(17, 22), np.arange(22, 27)):
        cv2.polylines(holes, [np.round(q[idx]).astype(np.int32)], False, 1, thickness=max(1, int(0.06 * s)))
    holes = np.asarray(cv2.dilate(holes, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))), np.uint8)
    if band is not None:  # a band above the brows
        shifted = band - np.array([x0, y0], np.float64)
        m |= polygon_mask(shape, cv2.convexHull(shifted.astype(np.float32)).reshape(-1, 2))
    out[y0:y1, x0:x1] = m & (1 - holes)
    return out


def forehead_extent(lightness: np.ndarray, valid: np.ndarray, landmarks: np.ndarray, max_height: float,
                    step: float = 0.03, darker: float = 0.8, skin: np.ndarray | None = None) -> np.ndarray:
    """How far (x face size) bare skin reaches above each brow before hair (or the image edge) starts.

    For each side of the face separately, walks up from just above the brow in bands ``step`` high;
    stops at the first band whose median lightness falls below ``darker`` x the cheeks' median (hair,
    hat brim, shadow) or that has too few valid pixels. Light hair over light skin is not detected.

    Args:
        lightness: (h, w) float32 perceptual lightness (e.g. cube root of linear Y).
        valid: (h, w) uint8 1 where the image has real pixels.
        landmarks: (68, 2) face landmarks on the same grid.
        max_height: upper bound returned when no hairline is found.
        skin: ``skin_mask(lightness.shape, landmarks)`` when the caller has it already.
    Returns:
        (10,) float64 heights for the brow points 17..26 (the 5 of each side share one value).
    """
    shape = lightness.shape
    out = np.full(len(BROWS), float(max_height))
    cheeks = (skin_mask(shape, landmarks) if skin is None else skin) & valid
    if np.count_nonzero(cheeks) < 8:
        return out
    ref = float(np.median(lightness[cheeks > 0]))
    p = np.asarray(landmarks, np.float64)
    for side in (slice(0, 5), slice(5, 10)):
        t = 0.04
        while t < max_height:
            lo = forehead_points(p, t)[side]
            hi = forehead_points(p, min(t + step, max_height))[side]
            polygon = np.concatenate([lo, hi[::-1]])
            y0, x0, y1, x1 = _window(shape, polygon, 1)  # the band's pixels, drawn on its own window
            if y1 <= y0 or x1 <= x0:  # the band lies outside the grid: no pixel of it
                break
            band = polygon_mask((y1 - y0, x1 - x0), polygon - np.array([x0, y0], np.float64))
            total = int(np.count_nonzero(band))
            inside = band & valid[y0:y1, x0:x1]
            if total == 0 or np.count_nonzero(inside) < 0.7 * total or \
                    float(np.median(lightness[y0:y1, x0:x1][inside > 0])) < darker * ref:
                break
            t += step
        out[side] = min(t, max_height)
    return out


def features_hull(shape_hw: tuple[int, int], landmarks: np.ndarray, grow: float) -> np.ndarray:
    """Hard (h, w) uint8 hull of brows, eyes, nose and mouth, dilated by ``grow`` x face size."""
    p = np.asarray(landmarks, np.float64)
    m = polygon_mask(shape_hw, cv2.convexHull(p[17:68].astype(np.float32)).reshape(-1, 2))
    k = int(2 * grow * face_size(p)) | 1
    return cv2.dilate(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))) if k > 1 else m


def skin_likeness(lightness: np.ndarray, skin: np.ndarray, start: float = 0.2, full: float = 0.45) -> np.ndarray:
    """(h, w) float32 in [0, 1]: 1 where a pixel is about as light as the face's skin (median over
    ``skin``), falling to 0 as it gets darker by ``start`` .. ``full`` of that (hair, beard shadow)."""
    if skin.sum() < 8:
        return np.ones(lightness.shape, np.float32)
    ref = float(np.median(lightness[skin > 0]))
    darker = (ref - lightness) / max(ref, 1e-6)
    return np.clip(1.0 - (darker - start) / (full - start), 0.0, 1.0).astype(np.float32)
