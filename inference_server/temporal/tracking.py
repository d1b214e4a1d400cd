"""Frame-to-frame face tracking pieces: optical-flow landmark propagation, rect transforms, association.

Convention: rects are ``(x0, y0, x1, y1)`` float pixels; landmarks ``(68, 2)`` float32 x/y pixels; grey
images ``(H, W)`` uint8 display-referred.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from ..faces.geometry import apply_affine, similarity_fit

Rect = tuple[float, float, float, float]

_LK_WINDOW = (21, 21)
_LK_LEVELS = 3
_LK_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01)


def _lucas_kanade(prev_gray: np.ndarray, gray: np.ndarray, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pyramidal Lucas-Kanade flow of (n, 1, 2) float32 points from ``prev_gray`` to ``gray``: the moved
    points and a (n, 1) uint8 status (1 = found)."""
    moved = np.empty_like(pts)  # output only: the search starts at ``pts`` (no initial-flow flag)
    moved, status, _ = cv2.calcOpticalFlowPyrLK(prev_gray, gray, pts, moved, winSize=_LK_WINDOW, maxLevel=_LK_LEVELS,
                                                criteria=_LK_CRITERIA)
    return np.asarray(moved), np.asarray(status)


def face_size(landmarks: np.ndarray) -> float:
    extent = landmarks.max(axis=0) - landmarks.min(axis=0)
    return float(max(extent.max(), 1.0))


def propagate(prev_gray: np.ndarray, gray: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, float]:
    """Move landmarks from ``prev_gray`` to ``gray`` with pyramidal Lucas-Kanade flow.

    Returns the moved landmarks and the fraction of points tracked forward and back to within 1 px
    of where they started (a confidence in [0, 1]). Points that fail keep the median motion.
    """
    pts = np.ascontiguousarray(landmarks, np.float32).reshape(-1, 1, 2)
    fwd, status = _lucas_kanade(prev_gray, gray, pts)
    back, status_back = _lucas_kanade(gray, prev_gray, fwd)
    error = np.linalg.norm((back - pts).reshape(-1, 2), axis=1)
    good = (status.ravel() == 1) & (status_back.ravel() == 1) & (error < 1.0)
    moved = fwd.reshape(-1, 2).astype(np.float32)
    if good.any():
        shift = np.median(moved[good] - landmarks[good], axis=0)
        moved[~good] = landmarks[~good] + shift
    else:
        moved = np.asarray(landmarks, np.float32).copy()
    return moved, float(good.mean())


def transform_rect(rect: Rect, from_landmarks: np.ndarray, to_landmarks: np.ndarray) -> Rect:
    """Carry a detector rect along with the similarity motion of its face's landmarks."""
    matrix = similarity_fit(from_landmarks, to_landmarks)
    x0, y0, x1, y1 = rect
    corners = apply_affine(matrix, np.array([[x0, y0], [x1, y1], [x0, y1], [x1, y0]], np.float64))
    (ax0, ay0), (ax1, ay1) = corners.min(axis=0), corners.max(axis=0)
    return float(ax0), float(ay0), float(ax1), float(ay1)


def rect_iou(a: Rect, b: Rect) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def associate(tracks: Mapping[int, Rect], detections: Sequence[Rect], min_iou: float) -> dict[int, int]:
    """Greedy one-to-one matching of tracks to detections by IoU (ties broken by track id, then index).

    Returns ``{track id: detection index}`` for pairs with IoU >= ``min_iou``.
    """
    pairs = sorted(((rect_iou(r, d), -t, -i, t, i) for t, r in tracks.items() for i, d in enumerate(detections)),
                   reverse=True)
    matched: dict[int, int] = {}
    used: set[int] = set()
    for iou, _, _, track, index in pairs:
        if iou < min_iou:
            break
        if track in matched or index in used:
            continue
        matched[track] = index
        used.add(index)
    return matched
