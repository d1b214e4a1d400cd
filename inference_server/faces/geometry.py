"""Landmark geometry shared by every package that works with faces: iBUG 68-point index groups, similarity
and affine fits, and the face size.

Landmarks are (68, 2) float arrays of x, y pixel centres in iBUG order; affine matrices are (2, 3)
float64 with ``dst ~ A @ [x, y, 1]``.
"""

from __future__ import annotations

import numpy as np

JAW = np.arange(0, 17)
BROWS = np.arange(17, 27)
NOSE = np.arange(27, 36)
EYES = np.arange(36, 48)
MOUTH = np.arange(48, 68)
INNER_MOUTH = np.arange(60, 68)


def similarity_fit(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation; no reflection) mapping src to dst.

    Weighted Umeyama. src, dst (n, 2). Returns the (2, 3) float64 matrix A with dst ~ A @ [x, y, 1]."""
    s = np.asarray(src, np.float64)
    d = np.asarray(dst, np.float64)
    w = np.ones(len(s)) if weights is None else np.asarray(weights, np.float64)
    w = w / w.sum()
    ms, md = (s * w[:, None]).sum(0), (d * w[:, None]).sum(0)
    sc, dc = s - ms, d - md
    cov = (dc * w[:, None]).T @ sc
    u, sv, vt = np.linalg.svd(cov)
    e = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        e[1, 1] = -1
    R = u @ e @ vt
    var_s = float((w * (sc ** 2).sum(1)).sum())
    scale = float((sv * np.diag(e)).sum() / max(var_s, 1e-12))
    A = np.zeros((2, 3))
    A[:, :2] = scale * R
    A[:, 2] = md - scale * R @ ms
    return A


def affine_fit(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares general affine (2, 3) float64 mapping src (n, 2) to dst (n, 2)."""
    s = np.asarray(src, np.float64)
    X = np.concatenate([s, np.ones((len(s), 1))], axis=1)
    sol, *_ = np.linalg.lstsq(X, np.asarray(dst, np.float64), rcond=None)
    return sol.T


def apply_affine(A: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine matrix to (n, 2) points; float64."""
    p = np.asarray(pts, np.float64)
    return p @ A[:, :2].T + A[:, 2]


def invert_affine(A: np.ndarray) -> np.ndarray:
    """Inverse of a (2, 3) affine matrix."""
    M = np.linalg.inv(A[:, :2])
    return np.concatenate([M, -(M @ A[:, 2])[:, None]], axis=1)


def face_size(landmarks: np.ndarray) -> float:
    """Longest side of the landmark bounding box, pixels."""
    p = np.asarray(landmarks, np.float64)
    return float((p.max(0) - p.min(0)).max())
