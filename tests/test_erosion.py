"""Issue 15: the skin masks' erosion by a large ellipse (12% of the face size: 73 px for a 600 px face, ~40 ms with
OpenCV on a 900 x 800 crop) is computed from the mask rows' runs where the mask is row-convex; it must give
cv2.erode's pixels exactly, and leave every other mask to OpenCV. (tests/test_speed_identity.py compares the skin
masks of real faces with the whole-grid cv2.erode formulation.)"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from inference_server.swap import zones
from inference_server.swap.erosion import erode_row_convex


def _ellipse(size: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


@pytest.mark.parametrize("seed", range(4))
def test_row_run_erosion_of_convex_polygons_is_opencvs_pixel_for_pixel(seed: int) -> None:
    rng = np.random.default_rng(seed)
    compared = 0
    for _ in range(300):
        h, w = (int(v) for v in rng.integers(3, 240, 2))
        # polygons inside the grid and ones cut by its edges (where the border counts as full)
        points = rng.uniform(-0.4, 1.4, (int(rng.integers(3, 10)), 2)) * [w, h]
        hull = cv2.convexHull(points.astype(np.float32)).reshape(-1, 2)
        mask = np.zeros((h, w), np.uint8)
        cv2.fillPoly(mask, [np.round(hull).astype(np.int32)], int(rng.choice([1, 7, 255])))
        element = _ellipse(int(rng.integers(0, 50)) * 2 + 1)
        eroded = erode_row_convex(mask, element)
        assert eroded is not None  # a filled convex polygon's rows are single runs
        assert eroded.dtype == np.uint8
        assert np.array_equal(eroded, cv2.erode(mask, element))
        compared += int(mask.any())
    assert compared > 200


def test_every_elliptic_element_up_to_201_px_takes_the_run_path() -> None:
    square = np.zeros((260, 260), np.uint8)
    square[20:240, 30:230] = 1
    for size in range(1, 202, 2):
        element = _ellipse(size)
        eroded = erode_row_convex(square, element)
        assert eroded is not None, size
        assert np.array_equal(eroded, cv2.erode(square, element)), size


def test_masks_and_elements_without_single_runs_are_left_to_opencv() -> None:
    two_blobs = np.zeros((40, 60), np.uint8)
    two_blobs[5:30, 5:20] = 1
    two_blobs[10:35, 30:55] = 1
    ring = cv2.circle(np.zeros((80, 80), np.uint8), (40, 40), 25, 1, thickness=6)
    mixed = np.zeros((30, 30), np.uint8)
    mixed[5:25, 5:15], mixed[5:25, 15:25] = 1, 2
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (5, 5))
    hollow = np.ones((5, 5), np.uint8)
    hollow[2, 2] = 0
    square = np.zeros((30, 30), np.uint8)
    square[5:25, 5:25] = 1
    assert erode_row_convex(two_blobs, _ellipse(5)) is None
    assert erode_row_convex(ring, _ellipse(5)) is None
    assert erode_row_convex(mixed, _ellipse(5)) is None
    assert erode_row_convex(square, hollow) is None          # a row of the element is two runs
    assert erode_row_convex(square, np.ones((4, 5), np.uint8)) is None  # no centre row
    crossed = erode_row_convex(square, cross)                # its rows are centred runs: taken, and exact
    assert crossed is not None and np.array_equal(crossed, cv2.erode(square, cross))
    empty = erode_row_convex(np.zeros((9, 9), np.uint8), _ellipse(5))
    assert empty is not None and not empty.any() and empty.shape == (9, 9)
    # the skin masks' erosion gives OpenCV's pixels on either path
    for mask in (two_blobs, ring, mixed, square):
        for size in (1, 5, 11):
            assert np.array_equal(zones._eroded(mask, size), cv2.erode(mask, _ellipse(size))), size
