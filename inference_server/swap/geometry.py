"""Landmark geometry of the classical swap: where the source's features land on the target.

Landmarks are (68, 2) float arrays of x, y pixel centres in iBUG order. The general landmark geometry
(index groups, similarity and affine fits, face size) is :mod:`inference_server.faces.geometry`.
"""

from __future__ import annotations

import numpy as np

from ..faces.geometry import BROWS, EYES, INNER_MOUTH, JAW, MOUTH, NOSE

# lips: outer upper/lower, inner upper/lower (mouth corners 48/54 and 60/64 belong to both)
UPPER_LIP = np.array([49, 50, 51, 52, 53, 61, 62, 63])
LOWER_LIP = np.array([55, 56, 57, 58, 59, 65, 66, 67])
CORNERS = np.array([48, 54, 60, 64])
ALIGN_POINTS = np.concatenate([BROWS, NOSE, EYES, MOUTH])


def untangle(dst: np.ndarray, ref: np.ndarray, triangles: np.ndarray, min_area_ratio: float = 0.05,
             step: float = 0.8, max_iter: int = 20) -> np.ndarray:
    """Pull ``dst`` toward ``ref`` (dst = ref + step * (dst - ref), repeatedly) until no triangle of
    ``triangles`` (index triples, (m, 3)) is flipped or squashed below ``min_area_ratio`` of its
    area in ``ref``. Keeps a landmark-driven warp one-to-one. Returns (n, 2) float64."""
    d = np.asarray(dst, np.float64).copy()
    r = np.asarray(ref, np.float64)

    def areas(p: np.ndarray) -> np.ndarray:
        a, b, c = p[triangles[:, 0]], p[triangles[:, 1]], p[triangles[:, 2]]
        return 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))

    ar = areas(r)
    for _ in range(max_iter):
        if np.all(areas(d) * np.sign(ar) >= min_area_ratio * np.abs(ar)):
            break
        d = r + step * (d - r)
    return d


# outer lip point -> the inner lip point it rests on (for lip thickness)
_OUTER_TO_INNER = {48: 60, 49: 61, 50: 61, 51: 62, 52: 63, 53: 63, 54: 64,
                   55: 65, 56: 65, 57: 66, 58: 67, 59: 67}


def destination_shape(src_aligned: np.ndarray, tgt: np.ndarray, jaw_weight: float = 0.5,
                      mouth_mode: str = "follow") -> np.ndarray:
    """Where the source's landmarks should land in the target image.

    Brows, eyes and nose keep the source's own proportions (``src_aligned``: the source landmarks after
    the similarity that best maps them onto the target). The jaw line is a mix: ``jaw_weight`` of the
    source's, the rest the target's (0 keeps the target's outline exactly). The mouth:

    - ``"source"``: the source's mouth as it is;
    - ``"follow"``: each lip moved as a whole by the mean offset between the source's and the target's
      inner lip line, so the lips keep the source's shape but open as far as the target's;
    - ``"target_opening"``: the inner lip line is the target's exactly and the outer lip line sits at
      the source's lip thickness around it (used when the target's own mouth interior is kept).

    src_aligned, tgt: (68, 2). Returns (68, 2) float64.
    """
    s = np.asarray(src_aligned, np.float64)
    t = np.asarray(tgt, np.float64)
    d = s.copy()
    d[JAW] = jaw_weight * s[JAW] + (1.0 - jaw_weight) * t[JAW]
    if mouth_mode == "source":
        return d
    up_off = (t[[61, 62, 63]] - s[[61, 62, 63]]).mean(0)
    lo_off = (t[[65, 66, 67]] - s[[65, 66, 67]]).mean(0)
    if mouth_mode == "follow":
        d[UPPER_LIP] = s[UPPER_LIP] + up_off
        d[LOWER_LIP] = s[LOWER_LIP] + lo_off
        d[CORNERS] = s[CORNERS] + 0.5 * (up_off + lo_off)
    elif mouth_mode == "target_opening":
        d[INNER_MOUTH] = t[INNER_MOUTH]
        for o, i in _OUTER_TO_INNER.items():
            d[o] = t[i] + (s[o] - s[i])
    else:
        raise ValueError(f"unknown mouth_mode {mouth_mode!r}")
    # the chin follows the lower lip's extra drop (only the source's share of the jaw needs it)
    drop = lo_off - 0.5 * (up_off + lo_off)
    for i, wgt in zip(range(4, 13), (0.2, 0.4, 0.6, 0.8, 1.0, 0.8, 0.6, 0.4, 0.2)):
        d[i] = d[i] + wgt * drop * jaw_weight
    return d


def mouth_opening(landmarks: np.ndarray) -> float:
    """Inner-lip gap divided by mouth width (0 closed, ~0.3+ wide open)."""
    p = np.asarray(landmarks, np.float64)
    gap = float(np.linalg.norm(p[[61, 62, 63]].mean(0) - p[[67, 66, 65]].mean(0)))
    width = float(np.linalg.norm(p[54] - p[48]))
    return gap / max(width, 1e-6)
