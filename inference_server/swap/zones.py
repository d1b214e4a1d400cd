"""Where the classical swap may act, from the landmarks and the two faces' lightness: the allowed zone,
skin, the hairline above the brows and hair over the face's sides.

Hard masks are (h, w) uint8 0/1, soft ones (h, w) float32 in [0, 1], on the target crop grid. The mask
toolkit they are built from (polygons, face outline) is :mod:`inference_server.compositing.masks`.

A grid may also be a window of the crop: ``origin`` ``(y0, x0)`` is then the crop pixel of its top-left
pixel, and ``shape_hw`` its size. Landmarks stay in crop pixels: every point is derived from them exactly as
on the whole crop and only then moved by the whole-pixel ``origin`` (:func:`on_grid`), so a polygon covers
the same pixels in the window as in the crop. When a function's result on a window equals the crop's result
cut to that window is said in its docstring (the caller, :func:`~.model.swap_model`, chooses windows that
hold everything those conditions ask for).
"""

from __future__ import annotations

import cv2
import numpy as np

from ..compositing.masks import face_polygon, forehead_points, polygon_mask
from ..faces.geometry import BROWS, face_size
from .erosion import erode_row_convex


def on_grid(points: np.ndarray, origin: tuple[int, int]) -> np.ndarray:
    """(k, 2) crop-pixel points moved onto a grid whose top-left pixel is crop pixel ``origin`` (y0, x0).

    Exact (no rounding) when ``origin`` is (0, 0) or no point lies left of or above it, which every window
    :func:`~.model.swap_model` uses satisfies: a whole number subtracted from a float no smaller than it
    leaves a multiple of that float's last place no larger than it. So the 1/16 px rounding of
    :func:`~inference_server.compositing.masks.polygon_mask` moves by exactly 16 x the origin."""
    return points - np.array([origin[1], origin[0]], np.float64)


def allowed_zone(shape_hw: tuple[int, int], landmarks: np.ndarray, forehead: float, grow: float,
                 origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Hard (h, w) uint8 zone the swap may touch: the target face polygon grown by ``grow`` x face size.

    On a window (``origin``) holding the whole polygon the crop's zone cut to the window: the dilation's
    border counts as empty, as the crop's pixels outside the polygon are."""
    p = np.asarray(landmarks, np.float64)
    hard = polygon_mask(shape_hw, on_grid(face_polygon(p, forehead), origin))
    k = int(2 * grow * face_size(p)) | 1
    if k > 1:
        hard = cv2.dilate(hard, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    return hard


def _window(shape_hw: tuple[int, int], points: np.ndarray, margin: int) -> tuple[int, int, int, int]:
    """``(y0, x0, y1, x1)``: the bounding box of ``points`` grown by ``margin`` px, clipped to the grid."""
    lo = np.floor(points.min(axis=0)).astype(int) - margin
    hi = np.ceil(points.max(axis=0)).astype(int) + margin + 1
    return (max(0, int(lo[1])), max(0, int(lo[0])), min(shape_hw[0], int(hi[1])), min(shape_hw[1], int(hi[0])))


def _nonzero_box(mask: np.ndarray, grow: int) -> tuple[int, int, int, int] | None:
    """``(y0, x0, y1, x1)``: the bounding box of ``mask``'s non-zero pixels grown by ``grow`` px, clipped to
    the mask; None when it has none."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    h, w = mask.shape
    return (max(0, int(rows[0]) - grow), max(0, int(cols[0]) - grow),
            min(h, int(rows[-1]) + 1 + grow), min(w, int(cols[-1]) + 1 + grow))


def _ellipse(size: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def _eroded(mask: np.ndarray, size: int) -> np.ndarray:
    """``cv2.erode(mask, ellipse(size))`` of a hard uint8 mask, computed on the box of its non-zero pixels
    grown by 1 px only (0 elsewhere, as the erosion leaves it). The same pixels: the erosion's border counts
    as full, but an element reaching past that box from a pixel inside it first covers a pixel of the empty
    1 px ring (each row of the elliptic element is a run centred on its column, no shorter than the rows
    farther from its centre, and likewise each column), which already empties that pixel; where the box is
    clipped by the mask's edge, the edge is the whole mask's edge. A mask whose rows are single runs (the skin
    masks' convex hull) is eroded from its runs (:func:`~.erosion.erode_row_convex`: the same pixels, ~10x faster
    for a 600 px face's element)."""
    box = _nonzero_box(mask, 1)
    out = np.zeros_like(mask)
    if box is not None:
        y0, x0, y1, x1 = box
        inner, element = np.ascontiguousarray(mask[y0:y1, x0:x1]), _ellipse(size)
        eroded = erode_row_convex(inner, element)
        out[y0:y1, x0:x1] = eroded if eroded is not None else cv2.erode(inner, element)
    return out


def _dilated_over(mask: np.ndarray, size: int, box: tuple[int, int, int, int]) -> np.ndarray:
    """``cv2.dilate(mask, ellipse(size))`` of a hard uint8 mask inside ``box`` (y0, x0, y1, x1), 0 elsewhere:
    computed on the box grown by the element's reach, so each pixel of the box reads the same neighbours
    (the border counts as empty, as the whole mask's does)."""
    h, w = mask.shape
    y0, x0, y1, x1 = box
    r = size // 2
    a0, b0, a1, b1 = max(0, y0 - r), max(0, x0 - r), min(h, y1 + r), min(w, x1 + r)
    grown = cv2.dilate(np.ascontiguousarray(mask[a0:a1, b0:b1]), _ellipse(size))
    out = np.zeros_like(mask)
    out[y0:y1, x0:x1] = grown[y0 - a0:y1 - a0, x0 - b0:x1 - b0]
    return out


def skin_mask(shape_hw: tuple[int, int], landmarks: np.ndarray, forehead: float = 0.0) -> np.ndarray:
    """Hard (h, w) uint8 mask of cheek/nose skin: the landmark hull shrunk by 6% of the face size,
    without the eyes, brows and lips (each grown by a few percent of the face size); with
    ``forehead`` > 0 also the band from just above the brows up to ``forehead`` x face size.

    Computed inside the window that holds every drawn shape plus the structuring elements' reach (the
    rest of the grid is 0): the same pixels as on the whole grid, because drawing is translation-exact
    for whole-pixel offsets and every pixel that can be non-zero sees only in-window neighbours. Within
    it, the erosion runs only around the hull and the holes' dilation only where the skin can be, which
    gives the same pixels (:func:`_eroded`, :func:`_dilated_over`)."""
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
    m = _eroded(m, e)
    holes = np.zeros(shape, np.uint8)
    for idx in (np.arange(36, 42), np.arange(42, 48), np.arange(48, 60)):
        holes |= polygon_mask(shape, cv2.convexHull(q[idx].astype(np.float32)).reshape(-1, 2))
    for idx in (np.arange(17, 22), np.arange(22, 27)):
        cv2.polylines(holes, [np.round(q[idx]).astype(np.int32)], False, 1, thickness=max(1, int(0.06 * s)))
    if band is not None:  # a band above the brows
        shifted = band - np.array([x0, y0], np.float64)
        m |= polygon_mask(shape, cv2.convexHull(shifted.astype(np.float32)).reshape(-1, 2))
    skin = _nonzero_box(m, 0)
    if skin is not None:  # the grown holes count only where the skin is (0 elsewhere either way)
        out[y0:y1, x0:x1] = m & (1 - _dilated_over(holes, k, skin))
    return out


def forehead_extent(lightness: np.ndarray, valid: np.ndarray, landmarks: np.ndarray, max_height: float,
                    step: float = 0.03, darker: float = 0.8, skin: np.ndarray | None = None,
                    origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """How far (x face size) bare skin reaches above each brow before hair (or the image edge) starts.

    For each side of the face separately, walks up from just above the brow in bands ``step`` high;
    stops at the first band whose median lightness falls below ``darker`` x the cheeks' median (hair,
    hat brim, shadow) or that has too few valid pixels. Light hair over light skin is not detected.

    Args:
        lightness: (h, w) float32 perceptual lightness (e.g. cube root of linear Y).
        valid: (h, w) uint8 1 where the image has real pixels.
        landmarks: (68, 2) face landmarks on the same grid.
        max_height: upper bound returned when no hairline is found.
        skin: ``skin_mask(lightness.shape, landmarks)`` when the caller has it already (required on a
            window: the crop's mask cut to it).
        origin: crop pixel (y0, x0) of the grid's top-left when the grid is a window of the crop. The
            result is the crop's when the window holds every non-zero pixel of ``skin`` and every pixel of
            the crop within 1 px of the bands' points (up to ``max_height``): then each band's pixel window
            (clipped to the crop or to the window alike), its pixels, their order and so the counts and
            medians are the crop's; an image edge is the crop's edge in both.
    Returns:
        (10,) float64 heights for the brow points 17..26 (the 5 of each side share one value).
    """
    shape = lightness.shape
    out = np.full(len(BROWS), float(max_height))
    if skin is None and origin != (0, 0):
        raise ValueError("forehead_extent on a window needs the window's skin mask")
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
            polygon = on_grid(np.concatenate([lo, hi[::-1]]), origin)
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


def features_hull(shape_hw: tuple[int, int], landmarks: np.ndarray, grow: float,
                  origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Hard (h, w) uint8 hull of brows, eyes, nose and mouth, dilated by ``grow`` x face size.

    On a window (``origin``) holding landmarks 17..67, the crop's hull cut to the window (as
    :func:`allowed_zone`)."""
    p = np.asarray(landmarks, np.float64)
    hull = cv2.convexHull(p[17:68].astype(np.float32)).reshape(-1, 2)
    m = polygon_mask(shape_hw, on_grid(hull.astype(np.float64), origin))
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
