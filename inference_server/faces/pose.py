"""Head pose (yaw, pitch, roll) from 68 iBUG landmarks.

A generic 3-D head (a few anthropometric points, millimetres) is fitted to the 2-D landmarks with a
scaled-orthographic (affine) camera by linear least squares, and the nearest rotation is taken.
Independent of the image size and focal length; accurate to a few degrees, which is all that choosing
the best-matching source photo needs.

Conventions (image axes: x right, y down):
    yaw   > 0: the nose points toward image right.
    pitch > 0: the nose points up.
    roll  > 0: the face is rotated clockwise on screen (the eye line descends to the right).
"""

from __future__ import annotations

import math

import numpy as np

# iBUG index -> (x, y, depth) in mm; x to image right for a frontal face, y down, depth away from camera.
_MODEL_POINTS: dict[int, tuple[float, float, float]] = {
    0: (-70.0, -25.0, 95.0), 16: (70.0, -25.0, 95.0),
    4: (-60.0, 40.0, 70.0), 12: (60.0, 40.0, 70.0),
    8: (0.0, 75.0, 22.0),
    17: (-50.0, -55.0, 35.0), 21: (-10.0, -58.0, 22.0), 22: (10.0, -58.0, 22.0), 26: (50.0, -55.0, 35.0),
    27: (0.0, -48.0, 20.0), 30: (0.0, 0.0, 0.0), 33: (0.0, 10.0, 12.0),
    36: (-44.0, -35.0, 32.0), 39: (-14.0, -34.0, 26.0), 42: (14.0, -34.0, 26.0), 45: (44.0, -35.0, 32.0),
    48: (-25.0, 32.0, 22.0), 54: (25.0, 32.0, 22.0),
}
_IDX = np.array(sorted(_MODEL_POINTS), dtype=np.int64)
_MODEL = np.array([_MODEL_POINTS[i] for i in _IDX], dtype=np.float64)


def rotation_from_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """Best-fit head rotation (3, 3) float64 mapping model axes to camera axes (x right, y down, depth)."""
    pts = np.asarray(landmarks, dtype=np.float64).reshape(68, 2)[_IDX]
    x = pts - pts.mean(0)
    X = _MODEL - _MODEL.mean(0)
    # affine camera: x ~ X @ M.T, M (2, 3)
    M, *_ = np.linalg.lstsq(X, x, rcond=None)
    M = M.T
    r1 = M[0] / (np.linalg.norm(M[0]) + 1e-12)
    r2 = M[1] / (np.linalg.norm(M[1]) + 1e-12)
    r3 = np.cross(r1, r2)
    u, _, vt = np.linalg.svd(np.stack([r1, r2, r3]))
    R = u @ vt
    if np.linalg.det(R) < 0:  # cannot happen with r3 = r1 x r2 unless degenerate; stay a rotation
        u[:, -1] *= -1
        R = u @ vt
    return R


def head_pose(landmarks: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees of the face with the given (68, 2) landmarks; see module docstring."""
    R = rotation_from_landmarks(landmarks)
    fwd = -R[:, 2]  # the face looks toward decreasing model depth
    yaw = math.degrees(math.atan2(fwd[0], -fwd[2]))
    pitch = math.degrees(math.atan2(-fwd[1], math.hypot(fwd[0], fwd[2])))
    roll = math.degrees(math.atan2(R[1, 0], R[0, 0]))
    return (yaw, pitch, roll)


def pose_distance(a: tuple[float, float, float], b: tuple[float, float, float], roll_weight: float = 0.0) -> float:
    """Dissimilarity of two poses in degrees. Roll is ignored by default: a 2-D similarity alignment
    removes it exactly, while yaw and pitch change what is visible."""
    return math.sqrt((a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2 + roll_weight * (a[2] - b[2]) ** 2)
