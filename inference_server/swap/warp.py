"""Dense, smooth landmark-driven warps (thin-plate spline), evaluated as OpenCV remap grids."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


def _tps_kernel(r2: np.ndarray) -> np.ndarray:
    """U(r) = r^2 log r^2 (the 2-D thin-plate radial basis), 0 at r = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        k = r2 * np.log(r2)
    return np.nan_to_num(k, nan=0.0, posinf=0.0, neginf=0.0)


@dataclass(frozen=True)
class ThinPlateSpline:
    """A 2-D thin-plate spline f: R^2 -> R^2 fitted to control points (ctrl -> values).

    Coordinates are normalised by ``scale`` around ``centre`` for conditioning."""

    ctrl: np.ndarray      # (n, 2) float64, normalised
    weights: np.ndarray   # (n, 2) radial weights
    affine: np.ndarray    # (3, 2) affine part
    centre: np.ndarray    # (2,)
    scale: float

    @staticmethod
    def fit(src: np.ndarray, dst: np.ndarray, regularisation: float = 0.0) -> "ThinPlateSpline":
        """Fit f with f(src_i) ~ dst_i. ``regularisation`` (in normalised units) trades exactness for
        smoothness; 0 interpolates exactly."""
        s = np.asarray(src, np.float64)
        d = np.asarray(dst, np.float64)
        centre = s.mean(0)
        scale = float(np.abs(s - centre).max()) or 1.0
        p = (s - centre) / scale
        q = (d - centre) / scale
        n = len(p)
        K = _tps_kernel(((p[:, None, :] - p[None, :, :]) ** 2).sum(-1)) + regularisation * np.eye(n)
        P = np.concatenate([np.ones((n, 1)), p], axis=1)
        L = np.zeros((n + 3, n + 3))
        L[:n, :n] = K
        L[:n, n:] = P
        L[n:, :n] = P.T
        rhs = np.zeros((n + 3, 2))
        rhs[:n] = q
        sol = np.linalg.solve(L, rhs)
        return ThinPlateSpline(ctrl=p, weights=sol[:n], affine=sol[n:], centre=centre, scale=scale)

    def __call__(self, pts: np.ndarray, wanted: np.ndarray | None = None) -> np.ndarray:
        """Evaluate at (m, 2) points; returns (m, 2) float64.

        ``wanted``: (m,) bool, the rows needed; the others come back as NaN, unevaluated. The wanted rows
        are bit for bit those of the full evaluation: the points are still taken in the same blocks of
        8192, each block still one matrix product of the same shape (which decides the BLAS kernel and so
        the summation order: a row's value does depend on the block's shape), only with the radial kernel
        of the unwanted rows set to 0 instead of evaluated; and a row of a matrix product reads no other
        row. (Tested in tests/test_speed_identity.py.)"""
        p = (np.asarray(pts, np.float64) - self.centre) / self.scale
        out = np.empty_like(p)
        step = 8192  # rows per matrix product (kept: the products' summation order decides the last bits)
        cx, cy = self.ctrl[None, :, 0], self.ctrl[None, :, 1]
        for i in range(0, len(p), step):
            c = p[i:i + step]
            rows = None if wanted is None else np.flatnonzero(wanted[i:i + step])
            if rows is not None and rows.size == 0:
                out[i:i + step] = np.nan
                continue
            some = rows is not None and rows.size < len(c)
            part = c[rows] if some else c
            dx = part[:, 0:1] - cx
            dy = part[:, 1:2] - cy
            r2 = dx * dx
            r2 += dy * dy  # the squared distance, as a sum over the two axes gives it
            with np.errstate(divide="ignore", invalid="ignore"):
                U = np.log(r2)
                U *= r2
            U[r2 == 0.0] = 0.0  # U(0) = 0 (0 * log 0 is NaN)
            if some:
                full = np.zeros((len(c), U.shape[1]))
                full[rows] = U
                U = full
            out[i:i + step] = U @ self.weights + self.affine[0] + c @ self.affine[1:]
            if some:
                unwanted = np.ones(len(c), bool)
                unwanted[rows] = False
                out[i:i + step][unwanted] = np.nan
        return out * self.scale + self.centre


def remap_grid(fn: ThinPlateSpline, shape_hw: tuple[int, int], step: int,
               window: tuple[int, int, int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Evaluate ``fn`` on a coarse grid (every ``step`` px, pixel centres) and upsample bilinearly to
    full-resolution float32 ``map_x, map_y`` (h, w) for ``cv2.remap``.

    ``window`` (y0, x0, y1, x1), with y0 and x0 multiples of ``step``: only that window of the (h, w) maps,
    bit for bit the whole maps cut to it. Its nodes are the crop's nodes, evaluated as in the whole grid
    (see ``ThinPlateSpline.__call__``'s ``wanted``), up to the first node at or past its last pixel (as in
    the whole grid: ceil(y1 / step) <= ceil(h / step)), so no pixel reads the replicated border; the
    upsampling's inverse map (1/step, exact) puts each pixel at the same fraction between the same node
    values, only the whole node index moves.
    """
    h, w = shape_hw
    gh = (h + step - 1) // step + 1
    gw = (w + step - 1) // step + 1
    gx, gy = np.meshgrid(np.arange(gw, dtype=np.float64) * step, np.arange(gh, dtype=np.float64) * step)
    nodes = np.stack([gx.ravel(), gy.ravel()], 1)
    if window is None:
        v = fn(nodes).reshape(gh, gw, 2).astype(np.float32)
        y0, x0, y1, x1 = 0, 0, h, w
    else:
        y0, x0, y1, x1 = window
        if y0 % step or x0 % step or not (0 <= y0 < y1 <= h and 0 <= x0 < x1 <= w):
            raise ValueError(f"window {window} is not in the ({h}, {w}) grid or does not start on a node "
                             f"(every {step} px)")
        rows = slice(y0 // step, -(-y1 // step) + 1)  # the nodes up to the first at or past the last pixel
        cols = slice(x0 // step, -(-x1 // step) + 1)
        wanted = np.zeros((gh, gw), bool)
        wanted[rows, cols] = True
        v = fn(nodes, wanted.ravel()).reshape(gh, gw, 2)[rows, cols].astype(np.float32)
    # the coarse node (i, j) sits at pixel (j*step, i*step); an affine resize maps it exactly there
    M = np.array([[step, 0.0, 0.0], [0.0, step, 0.0]], np.float32)
    full = cv2.warpAffine(v, M, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return np.ascontiguousarray(full[..., 0]), np.ascontiguousarray(full[..., 1])


def boundary_anchors(points: np.ndarray, margin: float, count: int = 16) -> np.ndarray:
    """``count`` points on a circle around the landmarks, ``margin`` x their radius out; (count, 2)."""
    p = np.asarray(points, np.float64)
    c = p.mean(0)
    r = float(np.linalg.norm(p - c, axis=1).max()) * margin
    a = np.arange(count) * (2 * np.pi / count)
    return c + r * np.stack([np.cos(a), np.sin(a)], 1)
