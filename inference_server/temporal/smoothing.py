"""Zero-phase smoothing of landmark trajectories over a whole track.

Convention: a trajectory is ``(T, K, 2)`` float (T frames, K landmarks, x/y pixels) sampled on
consecutive frames of one track within one cut; rows that are NaN are gaps (no observation).
"""

from __future__ import annotations

import numpy as np


def fill_gaps(trajectory: np.ndarray, max_gap: int) -> np.ndarray:
    """Linearly interpolate NaN runs of at most ``max_gap`` frames that have observations on both sides.

    Longer gaps, and gaps at either end, stay NaN. Returns a new array.
    """
    out = np.array(trajectory, dtype=np.float64, copy=True)
    valid = ~np.isnan(out.reshape(len(out), -1)).any(axis=1)
    t = np.arange(len(out))
    index = np.flatnonzero(valid)
    for a, b in zip(index[:-1], index[1:]):
        if 1 < b - a <= max_gap + 1:
            w = ((t[a + 1:b] - a) / (b - a))[:, None, None]
            out[a + 1:b] = (1.0 - w) * out[a] + w * out[b]
    return out


def gaussian_kernel(sigma: float) -> np.ndarray:
    radius = max(1, int(np.ceil(3.0 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def smooth_segment(segment: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian (zero-phase) smoothing along axis 0 of a gap-free ``(T, ...)`` array.

    The ends are extended by point reflection (``2 x[0] - x[k]``), which keeps a steady motion straight
    up to the first and last frame instead of pulling the ends toward the middle.
    """
    if sigma <= 0.0 or len(segment) < 3:
        return np.array(segment, dtype=np.float64, copy=True)
    kernel = gaussian_kernel(sigma)
    radius = len(kernel) // 2
    pad = min(radius, len(segment) - 1)
    head = 2.0 * segment[:1] - segment[pad:0:-1]
    tail = 2.0 * segment[-1:] - segment[-2:-pad - 2:-1]
    extended = np.concatenate([head, segment, tail], axis=0).astype(np.float64)
    if pad < radius:  # very short tracks: repeat the reflected ends
        extended = np.concatenate([np.repeat(extended[:1], radius - pad, 0), extended,
                                   np.repeat(extended[-1:], radius - pad, 0)], axis=0)
    flat = extended.reshape(len(extended), -1)
    smoothed = np.stack([np.convolve(flat[:, j], kernel, mode="valid") for j in range(flat.shape[1])], axis=1)
    return smoothed.reshape(segment.shape)


def smooth_trajectory(trajectory: np.ndarray, sigma: float, max_gap: int = 4) -> np.ndarray:
    """Fill short gaps, then smooth each gap-free run independently (never across a long gap).

    Args:
        trajectory: ``(T, K, 2)`` with NaN rows for frames without an observation.
        sigma: Gaussian sigma in frames; 0 turns smoothing off (gaps are still filled).
        max_gap: longest run of missing frames that is interpolated.

    Returns:
        ``(T, K, 2)`` float64; rows still NaN where a gap was too long to fill.
    """
    filled = fill_gaps(trajectory, max_gap)
    valid = ~np.isnan(filled.reshape(len(filled), -1)).any(axis=1)
    out = filled.copy()
    start = None
    for t in range(len(valid) + 1):
        inside = t < len(valid) and valid[t]
        if inside and start is None:
            start = t
        elif not inside and start is not None:
            out[start:t] = smooth_segment(filled[start:t], sigma)
            start = None
    return out


def jitter(trajectory: np.ndarray) -> float:
    """Mean absolute second difference (px/frame^2) over landmarks and frames; NaN rows skipped."""
    d2 = trajectory[2:] - 2.0 * trajectory[1:-1] + trajectory[:-2]
    d2 = d2[~np.isnan(d2.reshape(len(d2), -1)).any(axis=1)] if len(d2) else d2
    return float(np.abs(d2).mean()) if d2.size else float("nan")
