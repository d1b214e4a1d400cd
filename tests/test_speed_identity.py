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
    rng = np.random.default_rng(3)
    for crop, detected in faces:
        # the detector's whole-pixel landmarks, and fractional ones (as a destination shape has)
        for landmarks in (detected, detected + rng.normal(0.0, 1.5, detected.shape)):
            for forehead in (0.0, 0.1, 0.22):
                expected = reference_skin_mask(crop.shape[:2], landmarks, forehead)
                assert np.array_equal(zones.skin_mask(crop.shape[:2], landmarks, forehead), expected)
                checked += int(expected.any())
    assert checked >= 20  # real masks, not empty ones


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


# --- the analysis's display proxy, made a block of rows at a time -------------------------------------------------

@pytest.mark.parametrize("channels, rgb_index", [(4, [0, 1, 2]), (4, [2, 0, 3]), (3, [0, 1, 2]), (5, [2, 3, 4])])
def test_the_display_proxy_by_blocks_of_rows_equals_the_whole_frame_one(faces_dir: Path, channels: int,
                                                                        rgb_index: list[int]) -> None:
    from inference_server.plates.colour import LINEAR_REC709, ColourSpace
    from inference_server.server.analysis_steps import PROXY_ROWS, display_proxy

    rgb8 = load_rgb8(faces_dir / "fr_obama.jpg")
    linear = ((rgb8.astype(np.float32) / 255.0) ** 2.2) * np.float32(3.0)  # HDR highlights past 1
    h, w = linear.shape[:2]
    plate = np.concatenate([linear, np.ones((h, w, channels - 3), np.float32)], axis=2) if channels > 3 else linear
    plate[::37, ::41] = _awkward_values(5)[:len(range(0, h, 37)), :len(range(0, w, 41)), :1]  # NaN, inf, -0 ...
    assert h % PROXY_ROWS != 0 or h > PROXY_ROWS  # a last block shorter than the others, or several blocks
    colourspace = ColourSpace.named(LINEAR_REC709)
    whole = np.ascontiguousarray(colourspace.to_proxy8(plate[..., rgb_index]))  # the formulation it replaces
    blocked = display_proxy(plate, rgb_index, colourspace)
    assert blocked.dtype == np.uint8 and blocked.shape == (h, w, 3) and blocked.flags.c_contiguous
    assert np.array_equal(blocked, whole)
    assert np.array_equal(display_proxy(plate[:PROXY_ROWS - 5], rgb_index, colourspace), whole[:PROXY_ROWS - 5])


# --- cleaning non-finite values in fewer passes (bit for bit np.nan_to_num) ---------------------------------

def _awkward_values(seed: int) -> np.ndarray:
    """(64, 64, 3) float32: random values around [0, 1] with NaN, +-inf, -0.0, subnormals and the bounds."""
    rng = np.random.default_rng(seed)
    values = (rng.normal(0.5, 1.5, (64, 64, 3))).astype(np.float32)
    specials = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1.0, np.nextafter(np.float32(1), np.float32(2)),
                         np.float32(1e-42), -np.float32(1e-42), 65504.0, -3.0], np.float32)
    flat = values.reshape(-1)
    flat[rng.choice(flat.size, 400, replace=False)] = rng.choice(specials, 400)
    return values


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and bool((a.view(np.uint32) == b.view(np.uint32)).all())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_clip_unit_and_the_srgb_curves_match_nan_to_num_bit_for_bit(seed: int) -> None:
    from facebridge.srgb import (
        _LUT_STEPS,
        _SRGB8_LUT,
        clip_unit,
        linear_to_srgb8,
        srgb_encode,
    )

    x = _awkward_values(seed)
    reference = np.clip(np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    assert _same_bits(clip_unit(x), reference)
    assert _same_bits(clip_unit(x), np.clip(np.nan_to_num(x), 0.0, 1.0))  # (the model stage's spelling)
    encoded = np.where(reference <= 0.0031308, reference * 12.92,
                       1.055 * np.power(reference, 1.0 / 2.4) - 0.055).astype(np.float32)
    assert _same_bits(srgb_encode(x), encoded)
    lut_index = (reference * _LUT_STEPS + 0.5).astype(np.uint16)
    assert np.array_equal(linear_to_srgb8(x), _SRGB8_LUT[lut_index])
    before = x.copy()
    clip_unit(x)
    assert _same_bits(x, before), "clip_unit must not write into its input"


@pytest.mark.parametrize("seed", [0, 1])
def test_finite_and_the_working_crop_cleaning_match_nan_to_num_bit_for_bit(seed: int) -> None:
    from inference_server.pipeline.face_render import _finite_or, finite

    x = _awkward_values(seed) * np.float32(4.0)
    assert _same_bits(finite(x), np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0))
    scale = 3.7
    assert _same_bits(_finite_or(x, scale), np.nan_to_num(x, nan=0.0, posinf=scale, neginf=0.0))
    clean = np.abs(np.nan_to_num(x))
    assert _finite_or(clean, scale) is clean  # all finite: nothing to copy


@pytest.mark.parametrize("seed", [0, 1])
def test_the_brightest_finite_value_is_the_gathered_ones_maximum(seed: int) -> None:
    """The render's highlight limit (the crop's largest finite value) without gathering the finite values first:
    the same value and type as ``crop[np.isfinite(crop)].max()`` whatever NaN and infinities the crop holds."""
    from inference_server.pipeline.face_render import finite_max

    x = _awkward_values(seed)
    clean = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    with_minus_inf = clean.copy()
    with_minus_inf.flat[::7] = -np.inf
    with_nan = clean.copy()
    with_nan.flat[3] = np.nan
    for values in (x, clean, with_minus_inf, with_nan, -np.abs(clean), clean[:1], x.astype(np.float64)):
        expected = values[np.isfinite(values)].max()
        got = finite_max(values)
        assert got is not None and got.dtype == expected.dtype and got.tobytes() == expected.tobytes()
    for nothing in (np.full(5, np.nan, np.float32), np.array([np.inf, -np.inf, np.nan], np.float32),
                    np.zeros((0, 3), np.float32)):
        assert finite_max(nothing) is None


# --- one pair of DIS flows per pair of neighbouring frames ---------------------------------------------------

@pytest.fixture(scope="module")
def two_frames(faces_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Frames 1 and 2 of a real talking-head clip, (480, 480, 3) float32 scene-linear."""
    from facebridge.srgb import srgb_decode

    capture = cv2.VideoCapture(str(faces_dir / "lp_d18.mp4"))
    frames = []
    for _ in range(2):
        ok, bgr = capture.read()
        assert ok
        frames.append(srgb_decode(bgr[..., ::-1].astype(np.float32) / 255.0))
    capture.release()
    return frames[0], frames[1]


def reliable_flow(grey_t: np.ndarray, grey_n: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """One direction's flow and reliability as each frame first computed them (four flows per frame)."""
    from inference_server.pipeline.stabilise import _flow, _reliability

    forward, backward = _flow(grey_t, grey_n), _flow(grey_n, grey_t)
    return forward.astype(np.float32), _reliability(forward, backward, grey_t, grey_n, threshold)


def test_a_pair_of_flows_gives_each_direction_exactly(two_frames: tuple[np.ndarray, np.ndarray]) -> None:
    from inference_server.pipeline.stabilise import reliable_flow_pair

    grey = [cv2.cvtColor((np.clip(f, 0, 1) ** (1 / 2.2) * 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)
            for f in two_frames]
    (ab, ab_rel), (ba, ba_rel) = reliable_flow_pair(grey[0], grey[1], 0.04)
    for (flow, rel), (a, b) in (((ab, ab_rel), (0, 1)), ((ba, ba_rel), (1, 0))):
        own_flow, own_rel = reliable_flow(grey[a], grey[b], 0.04)
        assert _same_bits(flow, own_flow) and _same_bits(rel, own_rel)
    assert np.abs(ab).max() > 0.5 and 0.2 < ab_rel.mean() < 1.0  # a real flow, neither nothing nor all trusted


def test_neighbouring_frames_share_one_cached_flow_computation(two_frames: tuple[np.ndarray, np.ndarray],
                                                               tmp_path: Path) -> None:
    from inference_server.pipeline.crops import Box
    from inference_server.pipeline.neighbours import _grey, pair_flow
    from inference_server.pipeline.settings import RenderSettings
    from inference_server.store.payload_cache import PayloadCache
    from inference_server.store.shot_db import ShotDatabase

    class Counting(PayloadCache):
        computed = 0

        def get_or_compute(self, key, compute):
            def counted():
                Counting.computed += 1
                return compute()
            return super().get_or_compute(key, counted)

    cache = Counting(tmp_path / "payloads", ShotDatabase(tmp_path / "shots.sqlite"))
    settings = RenderSettings()
    area = Box(60, 40, 420, 460)
    plate_a, plate_b = (f[area.slices] for f in two_frames)
    a, b = (lambda: plate_a), (lambda: plate_b)
    flow_ab, rel_ab = pair_flow(a, b, "hash-a", "hash-b", area, settings, cache)  # frame a renders
    flow_ba, rel_ba = pair_flow(b, a, "hash-b", "hash-a", area, settings, cache)  # then frame b
    assert Counting.computed == 1
    # each side gets its own direction: what its own flow computation gives, through the cache's half floats
    for (flow, rel), (t, n) in (((flow_ab, rel_ab), (plate_a, plate_b)), ((flow_ba, rel_ba), (plate_b, plate_a))):
        own_flow, own_rel = reliable_flow(_grey(t, settings), _grey(n, settings), settings.flow_threshold)
        assert _same_bits(flow, own_flow.astype(np.float16).astype(np.float32))
        assert _same_bits(rel, own_rel.astype(np.float16).astype(np.float32))
    assert not np.array_equal(flow_ab, flow_ba)
    fresh = Counting(tmp_path / "payloads2", ShotDatabase(tmp_path / "shots2.sqlite"))
    again_ba = pair_flow(b, a, "hash-b", "hash-a", area, settings, fresh)  # frame b first, cold
    assert Counting.computed == 2 and _same_bits(again_ba[0], flow_ba) and _same_bits(again_ba[1], rel_ba)


def reference_reliability(forward: np.ndarray, backward: np.ndarray, grey_t: np.ndarray, grey_n: np.ndarray,
                          threshold: float) -> np.ndarray:
    """The flow's reliability as first written: a meshgrid and sums over the last axis."""
    h, w = grey_t.shape
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mx, my = gx + forward[..., 0], gy + forward[..., 1]
    back_at = cv2.remap(backward, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    consistent = ((forward + back_at) ** 2).sum(2) <= 0.01 * ((forward ** 2).sum(2) + (back_at ** 2).sum(2)) + 0.5
    warped = cv2.remap(grey_n, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    photometric = np.abs(warped - grey_t.astype(np.float32)) / 255.0 <= threshold
    inside = (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
    return cv2.GaussianBlur((consistent & photometric & inside).astype(np.float32), (0, 0), 1.5)


def test_the_flow_reliability_equals_its_first_formulation(two_frames: tuple[np.ndarray, np.ndarray]) -> None:
    from inference_server.pipeline.stabilise import _flow, _reliability

    grey = [cv2.cvtColor((np.clip(f, 0, 1) ** (1 / 2.2) * 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)
            for f in two_frames]
    forward, backward = _flow(grey[0], grey[1]), _flow(grey[1], grey[0])
    for threshold in (0.02, 0.04, 0.2):
        fast = _reliability(forward, backward, grey[0], grey[1], threshold)
        assert _same_bits(fast, reference_reliability(forward, backward, grey[0], grey[1], threshold))
    rolled = np.roll(grey[1], 9, axis=1)  # a larger motion, with pixels leaving the frame
    forward, backward = _flow(grey[0], rolled), _flow(rolled, grey[0])
    fast = _reliability(forward, backward, grey[0], rolled, 0.04)
    assert _same_bits(fast, reference_reliability(forward, backward, grey[0], rolled, 0.04))
    assert 0.0 < fast.mean() < 1.0


# --- stored plate crops at half precision when that is exact -------------------------------------------------

def test_plate_crops_are_stored_as_half_floats_only_when_exact(two_frames: tuple[np.ndarray, np.ndarray]) -> None:
    from inference_server.server.shot_targets import plate_crop_payload, plate_crop_rgb

    half_plate = two_frames[0].astype(np.float16).astype(np.float32)  # what a half EXR decodes to
    half_plate[3, 4] = [np.nan, np.inf, -np.inf]
    half_plate[5, 6] = np.array([-0.0, 65504.0, 6e-8], np.float16).astype(np.float32)  # (a half subnormal)
    payload = plate_crop_payload(half_plate)
    assert list(payload) == ["rgb_half"] and payload["rgb_half"].nbytes * 2 == half_plate.nbytes
    assert _same_bits(plate_crop_rgb(payload), half_plate)
    full = half_plate.copy()
    full[7, 8, 1] = np.float32(0.1)  # not a half value: the crop stays float32
    payload = plate_crop_payload(full)
    assert list(payload) == ["rgb"] and _same_bits(plate_crop_rgb(payload), full)
    assert _same_bits(plate_crop_rgb({"rgb": full}), full)  # crops stored before (float32) read as they were


# --- the classical swap's model stage on a window of the crop ------------------------------------------------

def reference_swap_model(target: np.ndarray, target_landmarks: np.ndarray, source, params, small: float):
    """swap_model as it was before it worked on a window: every image operation on the whole crop."""
    from scipy.spatial import Delaunay

    from inference_server.compositing.classical_output import (
        FLAG_SHADING,
        FLAG_SOURCE_SKIN,
        FLAG_TARGET_SKIN,
        SwapModelOutput,
    )
    from inference_server.compositing.colour import luminance
    from inference_server.compositing.masks import (
        MAX_DISTANCE,
        face_polygon,
        inside_distance,
        signed_distance,
    )
    from inference_server.faces.geometry import (
        INNER_MOUTH,
        affine_fit,
        apply_affine,
        invert_affine,
        similarity_fit,
    )
    from inference_server.faces.pose import head_pose, pose_distance
    from inference_server.plates.colour import clip_unit, srgb_decode, srgb_encode
    from inference_server.swap.geometry import (
        ALIGN_POINTS,
        destination_shape,
        mouth_opening,
        untangle,
    )
    from inference_server.swap.model import (
        _box_of,
        _close_mouth,
        _prefiltered_source,
        below_brows,
    )
    from inference_server.swap.params import SMALL_FACE_ERODE
    from inference_server.swap.sharpness import match_sharpness

    small = float(np.clip(small, 0.0, 1.0))
    reach = 1.0 - small
    tgt = clip_unit(target.astype(np.float32, copy=False))
    h, w = tgt.shape[:2]
    T = np.asarray(target_landmarks, np.float64).reshape(68, 2)
    size = face_size(T)
    S0 = np.asarray(source.landmarks, np.float64)
    A0 = similarity_fit(S0[ALIGN_POINTS], T[ALIGN_POINTS])
    scale = float(np.sqrt(abs(np.linalg.det(A0[:, :2]))))
    src_img, S = _prefiltered_source(source, scale)
    if params.keep_mouth_interior and mouth_opening(S) > params.mouth_open_threshold:
        src_img = _close_mouth(src_img, S)
    A = similarity_fit(S[ALIGN_POINTS], T[ALIGN_POINTS])
    pose_gap = pose_distance(head_pose(S), head_pose(T))
    beta = float(np.clip((pose_gap - params.pose_tolerance) / params.pose_range, 0.0, 1.0))
    S_al = apply_affine(A, S)
    if beta > 0:
        A_aff = affine_fit(S[ALIGN_POINTS], T[ALIGN_POINTS])
        S_al = (1.0 - beta) * S_al + beta * apply_affine(A_aff, S)
    mouth_open = params.keep_mouth_interior and mouth_opening(T) > params.mouth_open_threshold
    D = destination_shape(S_al, T, params.jaw_weight * (1.0 - beta), "target_opening" if mouth_open else "follow")
    anchors_t = warp.boundary_anchors(np.concatenate([T, D]), 1.8)
    anchors_s = apply_affine(invert_affine(A), anchors_t)
    ctrl_t = np.concatenate([T, anchors_t])
    tri = Delaunay(ctrl_t).simplices
    D = untangle(np.concatenate([D, anchors_t]), ctrl_t, tri)[:68]
    tps = warp.ThinPlateSpline.fit(np.concatenate([D, anchors_t]), np.concatenate([S, anchors_s]),
                                   params.tps_regularisation)
    mx, my = warp.remap_grid(tps, (h, w), max(1, int(params.grid_step)))
    warped = cv2.remap(src_img.astype(np.float32), mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    sh, sw = src_img.shape[:2]
    inside_src = ((mx >= 0) & (mx <= sw - 1) & (my >= 0) & (my <= sh - 1)).astype(np.uint8)
    src_lin = srgb_decode(warped)
    tgt_lin = srgb_decode(tgt)
    skin_d = zones.skin_mask((h, w), D)
    skin_t = zones.skin_mask((h, w), T)
    src_light, tgt_light = np.cbrt(luminance(src_lin)), np.cbrt(luminance(tgt_lin))
    forehead: float | np.ndarray = params.forehead * reach
    if params.adaptive_forehead and reach > 0.0:
        full = np.ones((h, w), np.uint8)
        ext_s = zones.forehead_extent(src_light, inside_src, D, params.forehead, skin=skin_d)
        ext_t = zones.forehead_extent(tgt_light, full, T, params.forehead, skin=skin_t)
        forehead = np.maximum(np.minimum(ext_s, ext_t), 0.04) * reach
    allowed = zones.allowed_zone((h, w), T, params.forehead * reach, params.grow * reach) & inside_src
    if small > 0.0:
        allowed &= below_brows((h, w), T, reach * (params.forehead + params.grow) * size)
    hard = polygon_mask((h, w), face_polygon(D, forehead, convex=False)) & allowed
    if small > 0.0:
        hard = (inside_distance(hard) > small * SMALL_FACE_ERODE * size).astype(np.uint8)
    keep: np.ndarray = np.ones((h, w), np.float32)
    if params.occlusion:
        outer = hard & (1 - zones.features_hull((h, w), T, 0.04)) & (1 - zones.features_hull((h, w), D, 0.04))
        like = np.minimum(zones.skin_likeness(src_light, skin_d & inside_src), zones.skin_likeness(tgt_light, skin_t))
        like = np.where(outer > 0, like, 1.0).astype(np.float32)
        keep = cv2.GaussianBlur(like, (0, 0), max(1.0, 0.02 * size))
    hole = np.zeros((h, w), np.float32)
    if mouth_open:
        hard_hole = polygon_mask((h, w), cv2.convexHull(T[INNER_MOUTH].astype(np.float32)).reshape(-1, 2))
        sigma = max(0.7, 0.01 * size)
        k = 2 * int(np.ceil(1.5 * sigma)) + 1
        grown = cv2.dilate(hard_hole, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
        hole = np.clip(cv2.GaussianBlur(grown.astype(np.float32), (0, 0), sigma), 0.0, 1.0)
        keep = keep * (1.0 - hole)
    src_skin = skin_d & inside_src
    tgt_skin = skin_t
    if np.count_nonzero(src_skin) < 16 or np.count_nonzero(tgt_skin) < 16:
        src_skin = tgt_skin = hard.copy()
    band = 0.8 * float(np.min(forehead))
    both = zones.skin_mask((h, w), D, band) & zones.skin_mask((h, w), T, band) & inside_src
    if params.match_sharpness:
        src_lin = match_sharpness(src_lin, tgt_lin, src_skin.astype(np.float32), tgt_skin.astype(np.float32))
        warped = srgb_encode(src_lin)
    flags = (src_skin * FLAG_SOURCE_SKIN) | (tgt_skin * FLAG_TARGET_SKIN) | (both * FLAG_SHADING)
    y0, x0, y1, x1 = _box_of(allowed)
    win = (slice(y0, y1), slice(x0, x1))
    lim = MAX_DISTANCE
    return SwapModelOutput(
        crop_hw=np.array([h, w], np.int32),
        box=np.array([y0, x0, y1, x1], np.int32),
        source=np.ascontiguousarray(warped[win], dtype=np.float16),
        edge_distance=np.clip(signed_distance(hard), -lim, lim)[win].astype(np.float16),
        allowed_distance=np.clip(inside_distance(allowed), 0.0, lim)[win].astype(np.float16),
        keep=np.clip(keep, 0.0, 1.0)[win].astype(np.float16),
        mouth_interior=hole[win].astype(np.float16),
        flags=np.ascontiguousarray(flags[win].astype(np.uint8)),
        destination=D.astype(np.float32),
        settings=np.array([size, params.feather * size, params.edge_match * size, params.shading_degree],
                          np.float32),
    )


MODEL_FIELDS = ("source", "edge_distance", "allowed_distance", "keep", "mouth_interior", "flags", "destination",
                "settings", "box", "crop_hw")


def test_thin_plate_spline_wanted_rows_and_remap_windows_are_bit_identical() -> None:
    rng = np.random.default_rng(11)
    for n, m in ((84, 30000), (100, 8192 * 3 + 17)):
        src = rng.random((n, 2)) * 900.0
        fn = warp.ThinPlateSpline.fit(src, src + rng.normal(0.0, 6.0, (n, 2)), 1e-3)
        pts = rng.random((m, 2)) * 1000.0
        whole = fn(pts)
        for wanted in (rng.random(m) < 0.3, np.arange(m) % 8192 < 100, np.arange(m) >= m - 5):
            got = fn(pts, wanted)
            assert np.array_equal(got[wanted], whole[wanted]) and np.isnan(got[~wanted]).all()
    # (the rows are compared with the whole evaluation's, not with the same rows evaluated on their own: a
    # matrix product's rows may depend on the block's shape, as they did with the numpy this was written with
    # and do not with numpy 2.4.6; that is the BLAS's choice, not something this code may rely on either way)
    for h, w in ((1009, 1024), (301, 517)):
        mx, my = warp.remap_grid(fn, (h, w), 4)
        for window in ((0, 0, h, w), (120, 64, h * 2 // 3, w * 3 // 4), (4, 128, h, w), (h - 9, w - 16, h, w - 3)):
            y0, x0, y1, x1 = window
            x0 -= x0 % 4
            wx, wy = warp.remap_grid(fn, (h, w), 4, (y0, x0, y1, x1))
            assert _same_bits(wx, mx[y0:y1, x0:x1]) and _same_bits(wy, my[y0:y1, x0:x1])


@pytest.fixture(scope="module")
def swap_cases(faces_dir: Path, dlib_models) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, crop, landmarks): a frontal face with an open mouth (Obama), a wide open mouth (lp_d9), a face
    turned ~30 degrees (if_t1), a closed mouth (two_people), a large face (Tom Cruise), a tiny photo (the
    window is the whole crop), and crops cut so the face touches the crop's borders (windows clipped)."""
    out = []
    for name, index in (("fr_obama.jpg", 0), ("lp_d9.jpg", 0), ("if_t1.jpg", 0), ("fr_two_people.jpg", 0),
                        ("dlib_tom_cruise.jpg", 0), ("dlib_lfw_john_salley.jpg", 0), ("lp_d12.jpg", 0)):
        rgb8 = load_rgb8(faces_dir / name)
        landmarks = dlib_models.detect(rgb8)[index].landmarks
        crop, lm, _ = crop_target(rgb8, landmarks)
        out.append((name, crop, lm))
        if name in ("fr_obama.jpg", "lp_d12.jpg", "if_t1.jpg"):  # cut through the face on two sides
            lo = np.floor(lm.min(axis=0)).astype(int)
            hi = np.ceil(lm.max(axis=0)).astype(int)
            y0, x1 = lo[1] + (hi[1] - lo[1]) // 5, hi[0] - (hi[0] - lo[0]) // 6
            out.append((name + " cut", np.ascontiguousarray(crop[y0:, :x1]), lm - np.array([0, y0], np.float32)))
    return out


@pytest.fixture(scope="module")
def swap_sources(faces_dir: Path, dlib_models) -> list:
    from inference_server.faces.sources import prepare_sources

    return prepare_sources([("biden", load_rgb8(faces_dir / "fr_biden2.jpg")),
                            ("open mouth", load_rgb8(faces_dir / "lp_d9.jpg"))], dlib_models)


def test_the_model_stage_on_a_window_equals_the_whole_crop_formulation(swap_cases, swap_sources) -> None:
    from inference_server.swap import SwapParams, swap_model
    from inference_server.swap.geometry import mouth_opening
    from inference_server.swap.model import work_window

    default = SwapParams()
    variants = [(default, 0.0), (default, 0.5), (default, 1.0),
                (SwapParams(occlusion=False, adaptive_forehead=False), 0.0),
                (SwapParams(keep_mouth_interior=False, match_sharpness=False, grow=0.0), 0.5)]
    seen = {"windowed": 0, "clipped": 0, "whole": 0, "mouth": 0, "small": 0}
    for name, crop, lm in swap_cases:
        for params, small in (variants if "cut" in name or name == "fr_obama.jpg" else variants[:2]):
            for source in (swap_sources if small == 0.0 else swap_sources[:1]):
                expected = reference_swap_model(crop, lm, source, params, small)
                got = swap_model(crop, lm, source, params, small)
                for field in MODEL_FIELDS:
                    a, b = getattr(got, field), getattr(expected, field)
                    assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), \
                        (name, params, small, field)
                y0, x0, y1, x1 = work_window(crop.shape[:2], lm, expected.destination, params, small)
                h, w = crop.shape[:2]
                seen["whole"] += (y0, x0, y1, x1) == (0, 0, h, w)
                seen["windowed"] += (y1 - y0) * (x1 - x0) < 0.8 * h * w
                seen["clipped"] += (y1 - y0) * (x1 - x0) < h * w and (y0 == 0 or x0 == 0 or y1 == h or x1 == w)
                seen["mouth"] += bool(expected.mouth_interior.any())
                seen["small"] += int(small > 0.0 and expected.box[2] > expected.box[0])
                assert expected.keep.size > 0 and float(expected.keep.min()) < 1.0 or not params.occlusion
        if name == "lp_d9.jpg":
            assert mouth_opening(lm) > default.mouth_open_threshold
    assert min(seen.values()) >= 1, seen
    assert seen["windowed"] >= 10, seen


def test_an_open_mouthed_source_is_closed_once_and_renders_as_when_closed_every_frame(swap_cases, swap_sources) -> None:
    """The source with its mouth closed depends on the source alone: computed on its first use and kept with it
    (``SourceFace.derived``); every later frame gives the bits of closing it again."""
    from dataclasses import replace

    from inference_server.swap import SwapParams, swap_model
    from inference_server.swap.model import _close_mouth

    source = replace(swap_sources[1], derived={})  # the open mouth, nothing remembered yet
    name, crop, lm = next(case for case in swap_cases if case[0] == "fr_obama.jpg")
    first = swap_model(crop, lm, source, SwapParams())
    closed = source.derived["closed-mouth"]
    assert not closed.flags.writeable
    assert np.array_equal(closed, _close_mouth(source.image, np.asarray(source.landmarks, np.float64)))
    assert not np.array_equal(closed, source.image)  # an open mouth, really closed
    again = swap_model(crop, lm, source, SwapParams())
    assert source.derived["closed-mouth"] is closed
    expected = reference_swap_model(crop, lm, source, SwapParams(), 0.0)
    for field in MODEL_FIELDS:
        assert getattr(first, field).tobytes() == getattr(again, field).tobytes() == \
            getattr(expected, field).tobytes(), (name, field)
