"""The model stage of the classical swap: everything slow and deterministic, cached per face and frame.

:func:`swap_model` fits the geometry (source proportions aligned to the target, thin-plate warp), warps
the source, matches its fine-detail level to the target's and works out where the swap may act (face
polygon with the hairline-aware forehead band, hair occlusion, the target's open mouth interior). It
stops short of everything an artist may change afterwards (colour match, mask edge, region weights,
grain, blend), which :mod:`inference_server.compositing.classical` applies from the cached
:class:`~inference_server.compositing.classical_output.SwapModelOutput` in milliseconds.

All arrays of the output cover only the *work box*: the bounding box of the zone the swap may ever touch
(see :attr:`SwapModelOutput.box`); outside it the plate always stays as it is.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..compositing.classical_output import FLAG_SHADING, FLAG_SOURCE_SKIN, FLAG_TARGET_SKIN, SwapModelOutput
from ..compositing.colour import luminance
from ..compositing.masks import MAX_DISTANCE, face_polygon, inside_distance, polygon_mask, signed_distance
from ..faces.geometry import INNER_MOUTH, affine_fit, apply_affine, face_size, invert_affine, similarity_fit
from ..faces.pose import head_pose, pose_distance
from ..faces.sources import SourceFace
from ..plates.colour import clip_unit, srgb_decode, srgb_encode
from . import warp, zones
from .geometry import ALIGN_POINTS, destination_shape, mouth_opening, untangle
from .params import SMALL_FACE_ERODE, SwapParams
from .sharpness import match_sharpness


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


def _box_of(zone: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.flatnonzero(zone.any(axis=1)), np.flatnonzero(zone.any(axis=0))
    if rows.size == 0:
        return 0, 0, 0, 0
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def below_brows(shape_hw: tuple[int, int], landmarks: np.ndarray, lift: float = 0.0) -> np.ndarray:
    """Hard (h, w) uint8 mask of the pixels whose centre is on or below the brow line lifted by ``lift`` px.

    The brow line is, per column, the piecewise-linear line through the brow landmarks 17..26 (held level
    beyond the outermost ones)."""
    brows = np.asarray(landmarks, np.float64)[17:27]
    order = np.argsort(brows[:, 0], kind="stable")
    line = np.interp(np.arange(shape_hw[1], dtype=np.float64), brows[order, 0], brows[order, 1]) - lift
    return (np.arange(shape_hw[0], dtype=np.float64)[:, None] >= line[None, :]).astype(np.uint8)


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
    tgt = clip_unit(target.astype(np.float32, copy=False))
    h, w = tgt.shape[:2]
    T = np.asarray(target_landmarks, np.float64).reshape(68, 2)
    size = face_size(T)

    # geometry: source proportions, aligned to the target by a similarity
    S0 = np.asarray(source.landmarks, np.float64)
    A0 = similarity_fit(S0[ALIGN_POINTS], T[ALIGN_POINTS])
    scale = float(np.sqrt(abs(np.linalg.det(A0[:, :2]))))
    src_img, S = _prefiltered_source(source, scale)
    if params.keep_mouth_interior and mouth_opening(S) > params.mouth_open_threshold:
        src_img = _close_mouth(src_img, S)
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
    from scipy.spatial import Delaunay  # (lazy: scipy.spatial costs ~0.3 s of the server's start)

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

    # where the swap acts: destination face polygon within the target's (grown) polygon and the source's
    # extent; the forehead band stops where either face's hair starts
    # each face's cheek/nose skin (used by the hairline search, the hair occlusion and the statistics)
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
    if small > 0.0:  # a small face: never past the target's brow line (lifted by what is left of the band)
        allowed &= below_brows((h, w), T, reach * (params.forehead + params.grow) * size)
    hard = polygon_mask((h, w), face_polygon(D, forehead, convex=False)) & allowed
    if small > 0.0:
        hard = (inside_distance(hard) > small * SMALL_FACE_ERODE * size).astype(np.uint8)

    # hair over the face's sides (either face's): keep the plate there, outside the inner features
    keep: np.ndarray = np.ones((h, w), np.float32)
    if params.occlusion:
        outer = hard & (1 - zones.features_hull((h, w), T, 0.04)) & (1 - zones.features_hull((h, w), D, 0.04))
        like = np.minimum(
            zones.skin_likeness(src_light, skin_d & inside_src),
            zones.skin_likeness(tgt_light, skin_t))
        like = np.where(outer > 0, like, 1.0).astype(np.float32)
        keep = cv2.GaussianBlur(like, (0, 0), max(1.0, 0.02 * size))

    # mouth interior: where the target's mouth is open show its own interior (teeth, tongue)
    hole = np.zeros((h, w), np.float32)
    if mouth_open:
        hard_hole = polygon_mask((h, w), cv2.convexHull(T[INNER_MOUTH].astype(np.float32)).reshape(-1, 2))
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
