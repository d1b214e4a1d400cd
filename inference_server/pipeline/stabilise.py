"""Temporal stabilisation of a processed face with its neighbours, warped by the plate's optical flow.

What is averaged is given by the caller: the *change* an aligned stage made (processed face minus plate),
so that the plate's own detail and grain stay as they are and a model that changes nothing leaves the
plate exactly as it was; or, for the classical swap, which replaces the plate's face, the face itself
(the change measured from zero). Averaging the classical swap's change would carry the plate's own
frame-to-frame detail into the new face: the warping error inside the face rose from 1.23x to 1.38x the
plate's on a talking-head clip.

Convention: everything is in the frame-t crop ``box`` coordinates: faces and changes ``(h, w, 3)``
float32 linear, masks ``(h, w)`` float32 [0, 1], grey plates ``(h, w)`` uint8 display-referred. Deterministic: DIS flow
on identical inputs gives identical fields, and only the neighbours' own (cached or recomputed) results
are used, so a frame renders the same in any order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Neighbour:
    """A neighbouring frame's change (see the module docstring) on its own crop grid, ``offset`` (its
    crop origin minus frame t's) away from frame t's grid, with the plate's flow from frame t to it and
    that flow's reliability (both on frame t's grid, from ``reliable_flow_pair``)."""

    change: np.ndarray       # (hn, wn, 3) float32 linear
    mask: np.ndarray         # (hn, wn) float32
    offset: tuple[int, int]  # (dx, dy): neighbour crop origin - frame-t crop origin, pixels
    flow: np.ndarray         # (h, w, 2) float32
    reliability: np.ndarray  # (h, w) float32 in [0, 1]


def _flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    dis = cv2.DISOpticalFlow.create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(a, b, None)  # type: ignore[call-overload]  # None: no initial flow (an array would seed it); the stubs lack it


def _reliability(forward: np.ndarray, backward: np.ndarray, grey_t: np.ndarray, grey_n: np.ndarray,
                 threshold: float) -> np.ndarray:
    """Where ``forward`` (t -> n) is trusted: consistent with ``backward`` (n -> t) and photometrically
    matching after warping n onto t, blurred; (h, w) float32 in [0, 1]."""
    h, w = grey_t.shape
    # (the pixel grid broadcast, the squared lengths summed over their two components: the same float32
    # operations as a meshgrid and ``.sum(2)``, a fraction of the passes)
    mx = np.arange(w, dtype=np.float32)[None, :] + forward[..., 0]
    my = np.arange(h, dtype=np.float32)[:, None] + forward[..., 1]
    back_at = cv2.remap(backward, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    gap: np.ndarray = forward + back_at
    np.multiply(gap, gap, out=gap)
    f2, b2 = forward * forward, back_at * back_at
    consistent = gap[..., 0] + gap[..., 1] <= 0.01 * ((f2[..., 0] + f2[..., 1]) + (b2[..., 0] + b2[..., 1])) + 0.5
    warped = cv2.remap(grey_n, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    photometric = np.abs(warped - grey_t.astype(np.float32)) / 255.0 <= threshold
    inside = (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
    weight = (consistent & photometric & inside).astype(np.float32)
    return cv2.GaussianBlur(weight, (0, 0), 1.5)


def reliable_flow_pair(grey_a: np.ndarray, grey_b: np.ndarray, threshold: float
                       ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The plate's flow both ways between two grey crops and each direction's [0, 1] reliability (forward-backward
    consistent and photometrically matching, ``threshold`` the largest grey difference (0..1) still trusted
    after warping): ``((flow a -> b, its reliability), (flow b -> a, its reliability))``, two DIS flows for
    the pair of frames."""
    ab = _flow(grey_a, grey_b)
    ba = _flow(grey_b, grey_a)
    return ((ab.astype(np.float32), _reliability(ab, ba, grey_a, grey_b, threshold)),
            (ba.astype(np.float32), _reliability(ba, ab, grey_b, grey_a, threshold)))


def stabilise_face(face: np.ndarray, change: np.ndarray, mask: np.ndarray, neighbours: Sequence[Neighbour],
                   strength: float) -> np.ndarray:
    """Frame t's processed ``face`` with its ``change`` averaged with its neighbours' changes carried along
    the plate's flow (``change`` = face minus plate, or the face itself: see the module docstring).

    Where the flow is reliable and a neighbour's face covers the pixel, the result is
    ``face + sum(s * r_n * (change_n - change)) / (1 + sum(s * r_n))``; elsewhere (and wherever ``mask``
    is 0) the face is returned unchanged. The mask itself is not changed.
    """
    if strength <= 0.0 or not neighbours:
        return face
    rows, cols = np.nonzero((mask > 0.0).any(axis=1))[0], np.nonzero((mask > 0.0).any(axis=0))[0]
    if rows.size == 0:
        return face
    # only where the mask is live can a neighbour weigh in: work on its bounding box, the face elsewhere
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    out = face.astype(np.float32, copy=True)
    own = change[y0:y1, x0:x1].astype(np.float32)
    moved = np.zeros_like(own)
    weights = np.ones((y1 - y0, x1 - x0), np.float32)
    gx, gy = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
    live = mask[y0:y1, x0:x1] > 0.0
    for n in neighbours:
        mx = gx + n.flow[y0:y1, x0:x1, 0] - n.offset[0]
        my = gy + n.flow[y0:y1, x0:x1, 1] - n.offset[1]
        change_n = cv2.remap(n.change, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        mask_n = cv2.remap(n.mask, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        # coverage, not mask strength: the blend and region weights scale masks, never the stabilisation
        weight = np.float32(strength) * n.reliability[y0:y1, x0:x1] * (mask_n > 0.0) * live
        moved += weight[..., None] * (change_n - own)
        weights += weight
    out[y0:y1, x0:x1] += moved / weights[..., None]
    return out
