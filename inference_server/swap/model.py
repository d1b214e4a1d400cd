"""The model stage of the classical swap: everything slow and deterministic, cached per face and frame.

:func:`swap_model` fits the geometry (source proportions aligned to the target, thin-plate warp), warps
the source, matches its fine-detail level to the target's and works out where the swap may act (face
polygon with the hairline-aware forehead band, hair occlusion, the target's open mouth interior). It
stops short of everything an artist may change afterwards (colour match, mask edge, region weights,
grain, blend), which :mod:`inference_server.compositing.classical` applies from the cached
:class:`~inference_server.compositing.classical_output.SwapModelOutput` in milliseconds.

All arrays of the output cover only the *work box*: the bounding box of the zone the swap may ever touch
(see :attr:`SwapModelOutput.box`); outside it the plate always stays as it is.

Speed: the work box is about a third of the crop, so the stage works on a *window* of the crop
(:func:`work_window`, from the landmarks, before any image work) that holds the work box and everything
its pixels' values depend on; its output is bit for bit the one computed on the whole crop (see
:func:`work_window` for why; tests/test_speed_identity.py keeps the whole-crop formulation and compares).
"""

from __future__ import annotations

import cv2
import numpy as np

from ..compositing.classical_output import FLAG_SHADING, FLAG_SOURCE_SKIN, FLAG_TARGET_SKIN, SwapModelOutput
from ..compositing.colour import luminance
from ..compositing.masks import (
    MAX_DISTANCE,
    face_polygon,
    forehead_points,
    inside_distance,
    polygon_mask,
    signed_distance,
)
from ..faces.geometry import INNER_MOUTH, affine_fit, apply_affine, face_size, invert_affine, similarity_fit
from ..faces.pose import head_pose, pose_distance
from ..faces.sources import SourceFace
from ..plates.colour import clip_unit, srgb_decode, srgb_encode
from . import warp, zones
from .geometry import ALIGN_POINTS, destination_shape, mouth_opening, untangle
from .params import SMALL_FACE_ERODE, SwapParams
from .sharpness import SIGMAS, match_sharpness
from .zones import on_grid

_ALIGN = 64
"""A window's left edge, and its width unless it ends at the crop's right edge, are multiples of this many
pixels: a precaution, so each pixel of a row takes the same place in the vector loops of the row-wise image
operations (and their one-by-one remainders) in the window as in the crop."""
_SMALLEST = 1 << 14
"""No window with fewer pixels (padded by 1 px) is used: below that size a multi-threaded OpenCV measures
exact distances with IPP's transform instead of its own, and a small window of a larger crop would not be
measured by the same code as the crop."""


def _prefiltered_source(source: SourceFace, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Source image and landmarks, downsampled (INTER_AREA) when the swap would shrink it by more than
    2x, so the warp does not alias."""
    img = source.image
    lm = np.asarray(source.landmarks, np.float64)
    if scale >= 0.5:
        return img, lm
    f = scale * 2.0
    h, w = img.shape[:2]
    nw, nh = max(8, int(round(w * f))), max(8, int(round(h * f)))
    small = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
    lm = (lm + 0.5) * np.array([nw / w, nh / h]) - 0.5
    return small, lm


def _close_mouth(img: np.ndarray, lm: np.ndarray) -> np.ndarray:
    """Copy of the source image with its open mouth's interior (teeth, tongue) inpainted from the lips,
    so that a closed or differently opened target mouth is filled with lip, not squashed teeth."""
    size = face_size(lm)
    inner = lm[INNER_MOUTH]
    x0, y0 = np.floor(inner.min(0) - 0.1 * size).astype(int)
    x1, y1 = np.ceil(inner.max(0) + 0.1 * size).astype(int) + 1
    hh, ww = img.shape[:2]
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(ww, x1), min(hh, y1)
    if x1 - x0 < 3 or y1 - y0 < 3:
        return img
    roi = np.ascontiguousarray(img[y0:y1, x0:x1], dtype=np.float32)
    hole = polygon_mask(roi.shape[:2], cv2.convexHull((inner - [x0, y0]).astype(np.float32)).reshape(-1, 2))
    k = int(0.02 * size) * 2 + 1
    hole = cv2.dilate(hole, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    radius = max(2.0, 0.02 * size)
    roi8 = (np.clip(roi, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    filled = cv2.inpaint(roi8, hole, radius, cv2.INPAINT_TELEA).astype(np.float32) / 255.0
    out = img.copy()
    out[y0:y1, x0:x1] = np.where(hole[..., None] > 0, filled, roi)
    return out


def _closed_mouth_source(source: SourceFace) -> np.ndarray:
    """:func:`_close_mouth` of the source's own image and landmarks, computed once per source (it depends on
    nothing else) and kept in ``source.derived``; the same array every frame (read-only)."""
    closed = source.derived.get("closed-mouth")
    if closed is None:
        closed = _close_mouth(source.image, np.asarray(source.landmarks, np.float64)).view()
        closed.flags.writeable = False
        source.derived["closed-mouth"] = closed  # (two threads computing it at once store the same values)
    return closed


def _box_of(zone: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.flatnonzero(zone.any(axis=1)), np.flatnonzero(zone.any(axis=0))
    if rows.size == 0:
        return 0, 0, 0, 0
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def below_brows(shape_hw: tuple[int, int], landmarks: np.ndarray, lift: float = 0.0,
                origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Hard (h, w) uint8 mask of the pixels whose centre is on or below the brow line lifted by ``lift`` px.

    The brow line is, per column, the piecewise-linear line through the brow landmarks 17..26 (held level
    beyond the outermost ones). On a window of the crop whose top-left is crop pixel ``origin`` (y0, x0),
    the crop's mask cut to it: the same columns and rows (whole numbers) go through the same arithmetic."""
    y0, x0 = origin
    brows = np.asarray(landmarks, np.float64)[17:27]
    order = np.argsort(brows[:, 0], kind="stable")
    columns = np.arange(x0, x0 + shape_hw[1], dtype=np.float64)
    line = np.interp(columns, brows[order, 0], brows[order, 1]) - lift
    return (np.arange(y0, y0 + shape_hw[0], dtype=np.float64)[:, None] >= line[None, :]).astype(np.uint8)


def _blur_reach(sigma: float) -> int:
    """How far (px) ``cv2.GaussianBlur(float32, (0, 0), sigma)`` reads around a pixel, rounded up: OpenCV's
    kernel is ``round(8 sigma + 1) | 1`` wide, i.e. reaches at most ``4 sigma + 1`` px."""
    return int(np.ceil(4.0 * sigma)) + 1


def work_window(shape_hw: tuple[int, int], target_landmarks: np.ndarray, destination: np.ndarray,
                params: SwapParams, small: float) -> tuple[int, int, int, int]:
    """The window ``(y0, x0, y1, x1)`` of the (h, w) crop on which :func:`swap_model` works, from the
    target landmarks and the destination shape alone (crop pixels), before any image work.

    It holds, clipped to the crop:
      - every point any polygon of the stage is drawn through: both shapes and their brow points raised
        anywhere between the lowest and highest forehead height used (the band, its hairline search, the
        skin masks' bands), so moving them onto the window is exact (:func:`~.zones.on_grid`) and every
        hard mask, skin mask, hairline band and statistic sees the same pixels in the same order;
      - grown by the allowed zone's dilation: the whole allowed zone, hence the work box and the edge and
        allowed masks (which lie inside it);
      - grown further by the farthest reach of the neighbourhood operations whose result counts at those
        pixels: the hair-occlusion and mouth-hole blurs (at the work box), the detail match's blurs plus
        the Laplacian's pixel (at the work box and the skin pixels), the distance transforms' 1 px ring
        (the hard and allowed masks lie inside the work box, so from a pixel of the box the nearest pixel
        outside them is never beyond the ring around the box, whose projection onto the ring is at least as
        near; the exact transform gives the square root of that least squared distance, a whole number,
        however far the grid reaches), the dilations (whose border counts as empty, as the crop's pixels
        beyond the window are);
      - widened to start at a multiple of both the warp's grid step (its nodes are then the crop's
        nodes: :func:`~.warp.remap_grid`) and ``_ALIGN`` px, and to be a multiple of ``_ALIGN`` px wide
        unless it reaches the crop's right edge.
    Where the window reaches the crop's edge, the crop's edge is its edge, with the same border rules.
    Everything else is per pixel (the warp, the colour curves, the lightness). The whole crop is
    returned when the window would be tiny (``_SMALLEST``) or empty.
    """
    h, w = shape_hw
    T = np.asarray(target_landmarks, np.float64)
    D = np.asarray(destination, np.float64)
    size = face_size(T)
    reach = 1.0 - small
    f = float(params.forehead)
    heights = (min(0.0, f), max(f, 0.06))  # every band height used lies between these (brow points move linearly)
    drawn = np.concatenate([T, D] + [forehead_points(p, t) for p in (T, D) for t in heights])
    if not np.isfinite(drawn).all():
        return 0, 0, h, w
    margin = 2  # the distance transforms' ring, the Laplacian's pixel, the bands' 1 px
    if params.occlusion:
        margin = max(margin, _blur_reach(max(1.0, 0.02 * size)) + 1)
    if params.keep_mouth_interior:
        margin = max(margin, _blur_reach(max(0.7, 0.01 * size)) + 1)
    if params.match_sharpness:
        margin = max(margin, _blur_reach(max(SIGMAS)) + 2)
    grow = (int(2 * params.grow * reach * size) | 1) // 2
    lo = np.floor(drawn.min(axis=0)).astype(np.int64) - grow - margin
    hi = np.ceil(drawn.max(axis=0)).astype(np.int64) + grow + margin + 1
    step = max(1, int(params.grid_step))
    along = int(np.lcm(step, _ALIGN))
    y0, x0 = max(0, int(lo[1]) // step * step), max(0, int(lo[0]) // along * along)
    y1 = min(h, int(hi[1]))
    x1 = min(w, x0 + -(-(int(hi[0]) - x0) // _ALIGN) * _ALIGN)
    if y1 <= y0 or x1 <= x0 or (y1 - y0 + 2) * (x1 - x0 + 2) < _SMALLEST:
        return 0, 0, h, w
    return y0, x0, y1, x1


def swap_model(target: np.ndarray, target_landmarks: np.ndarray, source: SourceFace,
               params: SwapParams = SwapParams(), small: float = 0.0) -> SwapModelOutput:
    """The model stage of the classical swap for one face crop.

    Args:
        target: (h, w, 3) float32 display-referred sRGB-encoded [0, 1] crop around one face.
        target_landmarks: (68, 2) landmarks of that face in crop pixel coordinates.
        source: the prepared source face.
        params: swap settings (all of them model-affecting).
        small: small-face strength in [0, 1] (model-affecting, decided per face by its size): 0 = the
            full swap; towards 1 the forehead band, its hairline search and the mask's growth shrink
            away and the mask is eroded by up to ``SMALL_FACE_ERODE`` x face size; at 1 nothing of the
            swap reaches above the target's brow line (:func:`below_brows`).
    Returns:
        The :class:`SwapModelOutput`; bit-identical for identical inputs.
    """
    if target.ndim != 3 or target.shape[2] != 3:
        raise ValueError(f"target must be (h, w, 3), got {target.shape}")
    small = float(np.clip(small, 0.0, 1.0))
    reach = 1.0 - small  # what is left of the forehead band and of the mask's growth
    h, w = target.shape[:2]
    T = np.asarray(target_landmarks, np.float64).reshape(68, 2)
    size = face_size(T)

    # geometry: source proportions, aligned to the target by a similarity
    S0 = np.asarray(source.landmarks, np.float64)
    A0 = similarity_fit(S0[ALIGN_POINTS], T[ALIGN_POINTS])
    scale = float(np.sqrt(abs(np.linalg.det(A0[:, :2]))))
    src_img, S = _prefiltered_source(source, scale)
    if params.keep_mouth_interior and mouth_opening(S) > params.mouth_open_threshold:
        # unscaled (the usual case), the source alone decides it: once per source; a prefiltered copy per frame
        src_img = _closed_mouth_source(source) if src_img is source.image else _close_mouth(src_img, S)
    A = similarity_fit(S[ALIGN_POINTS], T[ALIGN_POINTS])
    # The source keeps its own proportions (similarity alignment) when the head poses agree; as they
    # differ, an affine alignment absorbs the foreshortening and the target's outline takes over.
    pose_gap = pose_distance(head_pose(S), head_pose(T))
    beta = float(np.clip((pose_gap - params.pose_tolerance) / params.pose_range, 0.0, 1.0))
    S_al = apply_affine(A, S)
    if beta > 0:
        A_aff = affine_fit(S[ALIGN_POINTS], T[ALIGN_POINTS])
        S_al = (1.0 - beta) * S_al + beta * apply_affine(A_aff, S)
    mouth_open = params.keep_mouth_interior and mouth_opening(T) > params.mouth_open_threshold
    D = destination_shape(S_al, T, params.jaw_weight * (1.0 - beta),
                                   "target_opening" if mouth_open else "follow")

    # backward warp: target pixel -> source pixel; far anchors follow the plain similarity
    anchors_t = warp.boundary_anchors(np.concatenate([T, D]), 1.8)
    anchors_s = apply_affine(invert_affine(A), anchors_t)
    # keep the warp one-to-one: no landmark triangle may flip between the target and destination shapes
    ctrl_t = np.concatenate([T, anchors_t])
    # (lazy: scipy.spatial costs ~0.4 s of the server's start; a server imports it beside the shot analysis,
    # inference_server.server.warmup.RENDER_MODULES)
    from scipy.spatial import Delaunay

    tri = Delaunay(ctrl_t).simplices
    D = untangle(np.concatenate([D, anchors_t]), ctrl_t, tri)[:68]
    tps = warp.ThinPlateSpline.fit(np.concatenate([D, anchors_t]), np.concatenate([S, anchors_s]),
                                   params.tps_regularisation)

    # from here on every (h, w) image of the crop is computed on the window only (all of it the whole-crop
    # formulation's values there: see work_window); masks drawn from landmarks are moved onto it by ``at``
    window = work_window((h, w), T, D, params, small)
    y0, x0, y1, x1 = window
    at = (y0, x0)
    hw = (y1 - y0, x1 - x0)
    crop_win = (slice(y0, y1), slice(x0, x1))
    tgt = clip_unit(target[crop_win].astype(np.float32, copy=False))

    mx, my = warp.remap_grid(tps, (h, w), max(1, int(params.grid_step)), window)
    warped = cv2.remap(src_img.astype(np.float32), mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    sh, sw = src_img.shape[:2]
    inside_src = ((mx >= 0) & (mx <= sw - 1) & (my >= 0) & (my <= sh - 1)).astype(np.uint8)

    src_lin = srgb_decode(warped)
    tgt_lin = srgb_decode(tgt)

    # where the swap acts: destination face polygon within the target's (grown) polygon and the source's
    # extent; the forehead band stops where either face's hair starts
    # each face's cheek/nose skin (used by the hairline search, the hair occlusion and the statistics),
    # drawn on the crop (on their own windows, see zones.skin_mask) and cut to the window, which holds them
    skin_d = np.ascontiguousarray(zones.skin_mask((h, w), D)[crop_win])
    skin_t = np.ascontiguousarray(zones.skin_mask((h, w), T)[crop_win])
    src_light, tgt_light = np.cbrt(luminance(src_lin)), np.cbrt(luminance(tgt_lin))
    forehead: float | np.ndarray = params.forehead * reach
    if params.adaptive_forehead and reach > 0.0:
        full = np.ones(hw, np.uint8)  # the crop's pixels are all real ones (the window's are the crop's)
        ext_s = zones.forehead_extent(src_light, inside_src, D, params.forehead, skin=skin_d, origin=at)
        ext_t = zones.forehead_extent(tgt_light, full, T, params.forehead, skin=skin_t, origin=at)
        forehead = np.maximum(np.minimum(ext_s, ext_t), 0.04) * reach
    allowed = zones.allowed_zone(hw, T, params.forehead * reach, params.grow * reach, origin=at) & inside_src
    if small > 0.0:  # a small face: never past the target's brow line (lifted by what is left of the band)
        allowed &= below_brows(hw, T, reach * (params.forehead + params.grow) * size, origin=at)
    hard = polygon_mask(hw, on_grid(face_polygon(D, forehead, convex=False), at)) & allowed
    if small > 0.0:
        hard = (inside_distance(hard) > small * SMALL_FACE_ERODE * size).astype(np.uint8)

    # hair over the face's sides (either face's): keep the plate there, outside the inner features
    keep: np.ndarray = np.ones(hw, np.float32)
    if params.occlusion:
        outer = hard & (1 - zones.features_hull(hw, T, 0.04, origin=at)) & \
            (1 - zones.features_hull(hw, D, 0.04, origin=at))
        like = np.minimum(
            zones.skin_likeness(src_light, skin_d & inside_src),
            zones.skin_likeness(tgt_light, skin_t))
        like = np.where(outer > 0, like, 1.0).astype(np.float32)
        keep = cv2.GaussianBlur(like, (0, 0), max(1.0, 0.02 * size))

    # mouth interior: where the target's mouth is open show its own interior (teeth, tongue)
    hole = np.zeros(hw, np.float32)
    if mouth_open:
        lips = cv2.convexHull(T[INNER_MOUTH].astype(np.float32)).reshape(-1, 2).astype(np.float64)
        hard_hole = polygon_mask(hw, on_grid(lips, at))
        sigma = max(0.7, 0.01 * size)
        k = 2 * int(np.ceil(1.5 * sigma)) + 1  # grow by ~1.5 sigma so the blurred hole is ~1 inside the lips
        grown = cv2.dilate(hard_hole, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
        hole = np.clip(cv2.GaussianBlur(grown.astype(np.float32), (0, 0), sigma), 0.0, 1.0)
        keep = keep * (1.0 - hole)

    # pixels whose statistics count: each face's own skin, and skin seen in both (lighting field)
    src_skin = skin_d & inside_src
    tgt_skin = skin_t
    if np.count_nonzero(src_skin) < 16 or np.count_nonzero(tgt_skin) < 16:
        src_skin = tgt_skin = hard.copy()
    band = 0.8 * float(np.min(forehead))
    both = zones.skin_mask((h, w), D, band)[crop_win] & zones.skin_mask((h, w), T, band)[crop_win] & inside_src
    if params.match_sharpness:
        src_lin = match_sharpness(src_lin, tgt_lin, src_skin.astype(np.float32), tgt_skin.astype(np.float32))
        warped = srgb_encode(src_lin)
    flags = (src_skin * FLAG_SOURCE_SKIN) | (tgt_skin * FLAG_TARGET_SKIN) | (both * FLAG_SHADING)

    by0, bx0, by1, bx1 = _box_of(allowed)  # in the window
    win = (slice(by0, by1), slice(bx0, bx1))
    box = np.array([by0 + y0, bx0 + x0, by1 + y0, bx1 + x0] if by1 > by0 else [0, 0, 0, 0], np.int32)
    lim = MAX_DISTANCE
    return SwapModelOutput(
        crop_hw=np.array([h, w], np.int32),
        box=box,
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
