"""Reduced-size previews of a rendered frame: the region shown, its size, the half-float images and the
region-label overlay. Pure functions; the engine renders, these only cut, resize and pack.

Convention:
    - ``pixels``: ``(H, W, C)`` float32 scene-linear frame (data window), channels in file order.
    - A preview shows the data-window pixels of ``box`` (half-open ``[x0, x1) x [y0, y1)``) resized to
      ``(w, h)`` with area averaging; a frame point ``(x, y)`` lands at
      ``((x - x0 + 0.5) * w / box.width - 0.5, (y - y0 + 0.5) * h / box.height - 0.5)`` (pixel centres).
    - Preview images are ``(h, w, 3)`` float16 R,G,B, little-endian when packed: NaN becomes 0 and values
      beyond the half range clamp to +-65504 (a preview is for looking at; output files keep them).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from ..compositing.masks import face_polygon, polygon_mask
from ..compositing.regions import REGION_NAMES, region_masks
from ..faces.geometry import face_size
from .crops import Box, face_crop_box

DEFAULT_MAX_SIDE = 1024
MAX_IMAGE_BYTES = 3_500_000
"""Largest packed preview image: under gRPC's 4 MiB default message limit with room for the rest."""
OVERLAY_MAX_SIDE = 256
OCCLUDED = "occluded"
OVERLAY_NAMES = (*REGION_NAMES, OCCLUDED)
"""The overlay's label names: label ``k`` is ``OVERLAY_NAMES[k - 1]`` (the regions, then where an occluder saw
something in front of the face)."""
HALF_MAX = 65504.0
FOREHEAD = 0.3  # forehead band of the overlay's face zone, x face size


def faces_region(landmark_sets: Sequence[np.ndarray], frame_hw: tuple[int, int], margin: float = 0.6) -> Box:
    """Union of the faces' crop boxes (``face_crop_box`` with ``margin``), or the whole frame when none.

    Args:
        landmark_sets: ``(68, 2)`` float landmarks of each face, data-window pixels.
        frame_hw: ``(height, width)`` of the frame.
    """
    h, w = frame_hw
    if not landmark_sets:
        return Box(0, 0, w, h)
    boxes = [face_crop_box(np.asarray(lm, np.float32), frame_hw, margin) for lm in landmark_sets]
    return Box(min(b.x0 for b in boxes), min(b.y0 for b in boxes), max(b.x1 for b in boxes), max(b.y1 for b in boxes))


def preview_size(box: Box, max_side: int, channels: int = 3, max_bytes: int = MAX_IMAGE_BYTES) -> tuple[int, int]:
    """``(w, h)`` of the preview of ``box``: at most ``max_side`` (0 = the default), never enlarged, and
    small enough that a half-float image stays under ``max_bytes``. Aspect ratio kept (rounded)."""
    side = max_side if max_side > 0 else DEFAULT_MAX_SIDE
    bw, bh = max(1, box.width), max(1, box.height)
    scale = min(1.0, side / max(bw, bh), (max_bytes / (2.0 * channels * bw * bh)) ** 0.5)
    return max(1, int(bw * scale)), max(1, int(bh * scale))


def reduce_rgb(pixels: np.ndarray, rgb_index: Sequence[int], box: Box, size: tuple[int, int]) -> np.ndarray:
    """The R,G,B of ``pixels`` inside ``box`` resized to ``size`` ``(w, h)``: ``(h, w, 3)`` float16 (see the
    module's convention for non-finite values; a NaN or Inf may spread over the preview pixel it falls in).

    Resizes before picking channels and cleaning values: both then touch the small image only.
    """
    crop = pixels[box.slices]
    index = list(rgb_index)
    if crop.shape[2] > 4:  # OpenCV resizes up to 4 channels at once
        crop, index = crop[..., index], [0, 1, 2]
    if (crop.shape[1], crop.shape[0]) != tuple(size):
        crop = cv2.resize(crop, tuple(size), interpolation=cv2.INTER_AREA)
    # a copy either way: the frame is never modified
    if index == [0, 1, 2] and crop.shape[2] == 4:
        rgb = cv2.cvtColor(np.asarray(crop, np.float32), cv2.COLOR_RGBA2RGB)
    elif index == [0, 1, 2] and crop.shape[2] == 3:
        rgb = np.array(crop, np.float32)
    else:
        rgb = np.ascontiguousarray(crop[..., index], np.float32)
    np.clip(rgb, -HALF_MAX, HALF_MAX, out=rgb)
    np.copyto(rgb, np.float32(0.0), where=np.isnan(rgb))
    # the same bits as numpy's astype(float16), faster
    return cv2.multiply(rgb, 1.0, dtype=cv2.CV_16F)  # type: ignore[call-overload, unused-ignore]  # a scalar factor, which OpenCV takes and its stubs before 5.1 lack


def to_preview_points(points: np.ndarray, box: Box, size: tuple[int, int]) -> np.ndarray:
    """Data-window ``(N, 2)`` points -> preview pixels of ``box`` at ``size`` (pixel-centre convention)."""
    scale = np.array([size[0] / max(1, box.width), size[1] / max(1, box.height)], np.float64)
    return (np.asarray(points, np.float64) - (box.x0, box.y0) + 0.5) * scale - 0.5


def region_labels(landmark_sets: Sequence[np.ndarray], box: Box, size: tuple[int, int],
                  max_side: int = OVERLAY_MAX_SIDE, occlusion: Sequence[tuple[Box, np.ndarray]] = ()) -> np.ndarray:
    """Region labels of the faces on a grid of at most ``max_side`` over ``box``: ``(h', w')`` uint8,
    0 outside every face, ``k`` for ``OVERLAY_NAMES[k - 1]``: the landmark partition of ``compositing.regions``
    inside each face's outline with a forehead band, later faces drawing over earlier ones, then
    :data:`OCCLUDED` inside those outlines wherever an occluder's keep-mask is below 0.5.

    Args:
        occlusion: ``(crop box, (h, w) float32 keep-mask)`` of each face an occluder ran on, frame pixels.
    """
    w, h = size
    factor = min(1.0, max_side / max(w, h))
    grid = (max(1, round(h * factor)), max(1, round(w * factor)))
    labels = np.zeros(grid, np.uint8)
    grid_size = (grid[1], grid[0])
    for landmarks in landmark_sets:
        points = to_preview_points(landmarks, box, grid_size).astype(np.float32)
        size_px = face_size(points)
        if size_px < 2.0:
            continue
        zone = polygon_mask(grid, face_polygon(points, FOREHEAD)) > 0
        masks = region_masks(grid, points, size_px)
        stack = np.stack([masks[name] for name in REGION_NAMES], axis=-1)
        labels[zone] = (np.argmax(stack, axis=-1) + 1).astype(np.uint8)[zone]
    for crop_box, keep in occlusion:
        occluded = _on_grid(crop_box, np.asarray(keep, np.float32) < 0.5, box, grid_size)
        labels[occluded & (labels > 0)] = OVERLAY_NAMES.index(OCCLUDED) + 1
    return labels


def _on_grid(crop_box: Box, mask: np.ndarray, box: Box, grid_size: tuple[int, int]) -> np.ndarray:
    """A boolean ``(h, w)`` mask over ``crop_box`` (frame pixels) sampled (nearest) on the overlay grid
    ``grid_size`` = ``(w', h')`` over ``box``: ``(h', w')`` bool, False outside ``crop_box``."""
    gw, gh = grid_size
    xs = box.x0 + (np.arange(gw) + 0.5) * max(1, box.width) / gw - 0.5   # frame x of each grid column centre
    ys = box.y0 + (np.arange(gh) + 0.5) * max(1, box.height) / gh - 0.5
    cols = np.round(xs - crop_box.x0).astype(np.intp)
    rows = np.round(ys - crop_box.y0).astype(np.intp)
    h, w = mask.shape
    col_ok, row_ok = (cols >= 0) & (cols < w), (rows >= 0) & (rows < h)
    picked = mask[np.clip(rows, 0, h - 1)[:, None], np.clip(cols, 0, w - 1)[None, :]]
    return picked & row_ok[:, None] & col_ok[None, :]
