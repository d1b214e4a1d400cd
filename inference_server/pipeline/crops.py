"""Face crop boxes and exposure normalisation of crops.

Convention: boxes are ``(x0, y0, x1, y1)`` integer pixel bounds, half-open, in data-window pixel
coordinates with the origin at the top-left pixel.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Box(NamedTuple):
    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def slices(self) -> tuple[slice, slice]:
        """``(rows, cols)`` slices selecting the box from an ``(H, W, ...)`` array."""
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def is_empty(self) -> bool:
        return self.x1 <= self.x0 or self.y1 <= self.y0


def union(a: Box, b: Box) -> Box:
    """The smallest box holding both (an empty box adds nothing)."""
    if a.is_empty:
        return b
    if b.is_empty:
        return a
    return Box(min(a.x0, b.x0), min(a.y0, b.y0), max(a.x1, b.x1), max(a.y1, b.y1))


def intersection(a: Box, b: Box) -> Box:
    """The pixels in both (empty when they do not overlap)."""
    return Box(max(a.x0, b.x0), max(a.y0, b.y0), min(a.x1, b.x1), min(a.y1, b.y1))


def contains(outer: Box, inner: Box) -> bool:
    return outer.x0 <= inner.x0 and outer.y0 <= inner.y0 and inner.x1 <= outer.x1 and inner.y1 <= outer.y1


def face_crop_box(landmarks: np.ndarray, frame_hw: tuple[int, int], margin: float = 0.6) -> Box:
    """Box around a face: the landmarks' bounding box grown by ``margin`` x its size on each side
    (and a further ``margin`` upward for the forehead), clipped to the frame.

    Args:
        landmarks: ``(68, 2)`` float, x/y pixel coordinates.
        frame_hw: ``(height, width)`` of the frame.
        margin: growth as a fraction of the face size (the larger side of the landmark box).
    """
    h, w = frame_hw
    x0, y0 = np.floor(landmarks.min(axis=0))
    x1, y1 = np.ceil(landmarks.max(axis=0))
    grow = margin * max(x1 - x0, y1 - y0, 1.0)
    return Box(
        int(max(0, x0 - grow)),
        int(max(0, y0 - 2 * grow)),
        int(min(w, x1 + grow + 1)),
        int(min(h, y1 + grow + 1)),
    )


def exposure_scale(crop_linear: np.ndarray, headroom: float = 0.9, percentile: float = 99.0) -> float:
    """Scale that brings an over-exposed linear crop into the model's [0, 1] range.

    Returns 1.0 for crops whose ``percentile`` of finite values is at most ``headroom`` (the usual case),
    else ``value / headroom``, so HDR faces are not clipped on the way into a display-referred model.
    The same scale multiplies the model's output on the way back. The percentile is taken on a grid of at
    most about 256 x 256 pixels of the crop.
    """
    sample = crop_linear[:: max(1, crop_linear.shape[0] // 256), :: max(1, crop_linear.shape[1] // 256)]
    finite = sample[np.isfinite(sample)]
    if finite.size == 0:
        return 1.0
    level = float(np.percentile(finite, percentile))
    return max(1.0, level / headroom)
