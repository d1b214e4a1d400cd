"""Issue 15: the faster classical swap gives the same bits as the straightforward formulation.

Each reference below is the plain whole-grid version of a function the model stage now computes on a window
(skin masks, the hairline search) or with fewer temporaries (the thin-plate spline): the same operations on
the same values, so any difference is a bug in the faster one. They run on real faces, also placed against
the crop's borders, where windows are clipped.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from support import crop_target, load_rgb8

from inference_server.compositing.masks import forehead_points, polygon_mask
from inference_server.faces.geometry import BROWS, face_size
from inference_server.swap import warp, zones

PHOTOS = ("fr_obama.jpg", "lp_d9.jpg", "if_t1.jpg", "fr_two_people.jpg", "dlib_lfw_john_salley.jpg")


def reference_skin_mask(shape_hw: tuple[int, int], landmarks: np.ndarray, forehead: float = 0.0) -> np.ndarray:
    p = np.asarray(landmarks, np.float64)
    s = face_size(p)
    m = polygon_mask(shape_hw, cv2.convexHull(p[:27].astype(np.float32)).reshape(-1, 2))
    e = int(0.12 * s) | 1
    m = np.asarray(cv2.erode(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (e, e))), np.uint8)
    holes = np.zeros(shape_hw, np.uint8)
    for idx in (np.arange(36, 42), np.arange(42, 48), np.arange(48, 60)):
        holes |= polygon_mask(shape_hw, cv2.convexHull(p[idx].astype(np.float32)).reshape(-1, 2))
    for idx in (np.arange(17, 22), np.arange(22, 27)):
        cv2.polylines(holes, [np.round(p[idx]).astype(np.int32)], False, 1, thickness=max(1, int(0.06 * s)))
    k = int(0.06 * s) | 1
    holes = np.asarray(cv2.dilate(holes, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))), np.uint8)
    if forehead > 0:
        band = np.concatenate([forehead_points(p, 0.06)[::-1], forehead_points(p, forehead)])
        m |= polygon_mask(shape_hw, cv2.convexHull(band.astype(np.float32)).reshape(-1, 2))
    return m & (1 - holes)


def reference_forehead_extent(lightness: np.ndarray, valid: np.ndarray, landmarks: np.ndarray, max_height: float,
                              step: float = 0.03, darker: float = 0.8) -> np.ndarray:
    shape = lightness.shape
    out = np.full(len(BROWS), float(max_height))
    cheeks = reference_skin_mask(shape, landmarks) & valid
    if cheeks.sum() < 8:
        return out
    ref = float(np.median(lightness[cheeks > 0]))
    p = np.asarray(landmarks, np.float64)
    for side in (slice(0, 5), slice(5, 10)):
        t = 0.04
        while t < max_height:
            lo = forehead_points(p, t)[side]
            hi = forehead_points(p, min(t + step, max_height))[side]
            band = polygon_mask(shape, np.concatenate([lo, hi[::-1]]))
            total = int(band.sum())
            inside = band & valid
            if total == 0 or inside.sum() < 0.7 * total or float(np.median(lightness[inside > 0])) < darker * ref:
                break
            t += step
        out[side] = min(t, max_height)
    return out


def reference_tps(fn: warp.ThinPlateSpline, pts: np.ndarray) -> np.ndarray:
    p = (np.asarray(pts, np.float64) - fn.centre) / fn.scale
    out = np.empty_like(p)
    for i in range(0, len(p), 8192):
        c = p[i:i + 8192]
        r2 = ((c[:, None, :] - fn.ctrl[None, :, :]) ** 2).sum(-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            U = np.nan_to_num(r2 * np.log(r2), nan=0.0, posinf=0.0, neginf=0.0)
        out[i:i + 8192] = U @ fn.weights + fn.affine[0] + c @ fn.affine[1:]
    return out * fn.scale + fn.centre


@pytest.fixture(scope="module")
def faces(faces_dir: Path, dlib_models) -> list[tuple[np.ndarray, np.ndarray]]:
    """(crop (h, w, 3) float32 sRGB [0, 1], landmarks (68, 2)) of real faces: centred crops and crops cut so
    the face touches a border (the windowed computations are clipped there)."""
    out = []
    for name in PHOTOS:
        rgb8 = load_rgb8(faces_dir / name)
        for detection in dlib_models.detect(rgb8)[:2]:
            crop, landmarks, _ = crop_target(rgb8, detection.landmarks)
            out.append((crop, landmarks))
            lo = np.floor(landmarks.min(axis=0)).astype(int)
            hi = np.ceil(landmarks.max(axis=0)).astype(int)
            mid = (lo + hi) // 2
            tight = crop[lo[1]:mid[1] + (hi[1] - mid[1]) // 2, mid[0] - (mid[0] - lo[0]) // 3:]
            out.append((np.ascontiguousarray(tight), landmarks - np.array([mid[0] - (mid[0] - lo[0]) // 3, lo[1]],
                                                                          np.float32)))
    return out


def test_windowed_skin_masks_equal_the_whole_grid_ones(faces: list[tuple[np.ndarray, np.ndarray]]) -> None:
    checked = 0
    for crop, landmarks in faces:
        for forehead in (0.0, 0.1, 0.22):
            expected = reference_skin_mask(crop.shape[:2], landmarks, forehead)
            assert np.array_equal(zones.skin_mask(crop.shape[:2], landmarks, forehead), expected)
            checked += int(expected.any())
    assert checked >= 10  # real masks, not empty ones


def test_windowed_hairline_search_equals_the_whole_grid_one(faces: list[tuple[np.ndarray, np.ndarray]]) -> None:
    heights = set()
    for crop, landmarks in faces:
        lightness = np.cbrt(np.clip(crop, 0.0, 1.0).mean(axis=2)).astype(np.float32)
        for valid in (np.ones(crop.shape[:2], np.uint8), (lightness > 0.35).astype(np.uint8)):
            expected = reference_forehead_extent(lightness, valid, landmarks, 0.22)
            got = zones.forehead_extent(lightness, valid, landmarks, 0.22)
            assert np.array_equal(got, expected)
            given = zones.forehead_extent(lightness, valid, landmarks, 0.22,
                                          skin=zones.skin_mask(lightness.shape, landmarks))
            assert np.array_equal(given, expected)
            heights.update(np.round(expected, 3).tolist())
    assert len(heights) > 2  # the search stopped at different heights, not always at the bound


def test_thin_plate_spline_evaluation_is_bit_identical() -> None:
    rng = np.random.default_rng(7)
    for n, m in ((84, 20000), (152, 9000), (20, 8192 * 2 + 5)):
        src = rng.random((n, 2)) * 900.0
        fn = warp.ThinPlateSpline.fit(src, src + rng.normal(0.0, 6.0, (n, 2)), 1e-3)
        pts = np.concatenate([rng.random((m, 2)) * 1000.0, src[:5]])  # control points themselves: r = 0
        assert np.array_equal(fn(pts), reference_tps(fn, pts))
