"""The embedded classical face swap: landmark-driven dense warp, linear-light colour match, soft mask."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.spatial import Delaunay

from . import blend, colour, geometry, masks, warp
from ..faces.pose import head_pose, pose_distance
from .sources import SourceFace


@dataclass(frozen=True)
class SwapParams:
    """Model-affecting settings of the classical swap (the defaults are the tuned embedded settings).

    Lengths are fractions of the target face size (longest side of its landmark box).

    Attributes:
        jaw_weight: share of the source's jaw line in the destination outline (0 = target's outline).
        keep_mouth_interior: where the target's mouth is open, show its own mouth interior and put the
            source's lips around it (at the source's lip thickness); elsewhere the source's lips open
            as far as the target's.
        mouth_open_threshold: inner-lip gap / mouth width above which the target mouth counts as open.
        forehead: height of the forehead band above the brows that is swapped.
        adaptive_forehead: lower the forehead band to where hair starts in either face.
        occlusion: outside the inner features, keep the plate where either face is much darker than
            its skin (hair falling over the forehead or cheeks).
        feather: width of the inward mask ramp.
        grow: how far beyond the target's own face polygon the mask may reach.
        shading_degree: degree of the polynomial lighting field fitted to target/source skin (0 = off).
        edge_match: how far inside the mask edge the plate's colour along the edge is blended into the
            face (a low-frequency gradient-domain blend; 0 = off).
        match_sharpness: soften the source to the target's level of fine detail (never sharpens).
        pose_tolerance, pose_range: head-pose gap (degrees) up to which the source keeps its exact
            proportions, and over which it blends to an affine fit and the target's outline.
        tps_regularisation: thin-plate smoothing (normalised units, 0 = exact interpolation).
        grid_step: spacing in px of the coarse grid the warp is evaluated on.
    """

    jaw_weight: float = 0.5
    keep_mouth_interior: bool = True
    mouth_open_threshold: float = 0.12
    forehead: float = 0.22
    adaptive_forehead: bool = True
    occlusion: bool = True
    feather: float = 0.08
    grow: float = 0.05
    shading_degree: int = 2
    match_sharpness: bool = True
    edge_match: float = 0.25
    pose_tolerance: float = 5.0
    pose_range: float = 20.0
    tps_regularisation: float = 1e-3
    grid_step: int = 4


@dataclass(frozen=True)
class SwapResult:
    """Output of :func:`swap_face`.

    Attributes:
        face: (h, w, 3) float32 display-referred sRGB-encoded [0, 1], same size as the target crop.
        mask: (h, w) float32 [0, 1] full-strength blend mask; exactly 0.0 where the plate stays untouched.
    """

    face: np.ndarray
    mask: np.ndarray


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
    size = geometry.face_size(lm)
    inner = lm[geometry.INNER_MOUTH]
    x0, y0 = np.floor(inner.min(0) - 0.1 * size).astype(int)
    x1, y1 = np.ceil(inner.max(0) + 0.1 * size).astype(int) + 1
    hh, ww = img.shape[:2]
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(ww, x1), min(hh, y1)
    if x1 - x0 < 3 or y1 - y0 < 3:
        return img
    roi = np.ascontiguousarray(img[y0:y1, x0:x1], dtype=np.float32)
    hole = masks.polygon_mask(roi.shape[:2], cv2.convexHull((inner - [x0, y0]).astype(np.float32)).reshape(-1, 2))
    k = int(0.02 * size) * 2 + 1
    hole = cv2.dilate(hole, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    radius = max(2.0, 0.02 * size)
    roi8 = (np.clip(roi, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    filled = cv2.inpaint(roi8, hole, radius, cv2.INPAINT_TELEA).astype(np.float32) / 255.0
    out = img.copy()
    out[y0:y1, x0:x1] = np.where(hole[..., None] > 0, filled, roi)
    return out


def swap_face(target: np.ndarray, target_landmarks: np.ndarray, source: SourceFace,
              params: SwapParams = SwapParams()) -> SwapResult:
    """Put ``source``'s face onto the face in ``target``.

    Args:
        target: (h, w, 3) float32 display-referred sRGB-encoded [0, 1] crop around one face.
        target_landmarks: (68, 2) float32 landmarks of that face in crop pixel coordinates.
        source: the prepared source face.
        params: swap settings.
    Returns:
        SwapResult with the swapped face and the soft mask on the crop grid. Deterministic.
    """
    if target.ndim != 3 or target.shape[2] != 3:
        raise ValueError(f"target must be (h, w, 3), got {target.shape}")
    tgt = np.clip(np.nan_to_num(target.astype(np.float32, copy=False)), 0.0, 1.0)
    h, w = tgt.shape[:2]
    T = np.asarray(target_landmarks, np.float64).reshape(68, 2)
    size = geometry.face_size(T)

    # geometry: source proportions, aligned to the target by a similarity
    S0 = np.asarray(source.landmarks, np.float64)
    A0 = geometry.similarity_fit(S0[geometry.ALIGN_POINTS], T[geometry.ALIGN_POINTS])
    scale = float(np.sqrt(abs(np.linalg.det(A0[:, :2]))))
    src_img, S = _prefiltered_source(source, scale)
    if params.keep_mouth_interior and geometry.mouth_opening(S) > params.mouth_open_threshold:
        src_img = _close_mouth(src_img, S)
    A = geometry.similarity_fit(S[geometry.ALIGN_POINTS], T[geometry.ALIGN_POINTS])
    # The source keeps its own proportions (similarity alignment) when the head poses agree; as they
    # differ, an affine alignment absorbs the foreshortening and the target's outline takes over.
    pose_gap = pose_distance(head_pose(S), head_pose(T))
    beta = float(np.clip((pose_gap - params.pose_tolerance) / params.pose_range, 0.0, 1.0))
    S_al = geometry.apply_affine(A, S)
    if beta > 0:
        A_aff = geometry.affine_fit(S[geometry.ALIGN_POINTS], T[geometry.ALIGN_POINTS])
        S_al = (1.0 - beta) * S_al + beta * geometry.apply_affine(A_aff, S)
    mouth_open = params.keep_mouth_interior and geometry.mouth_opening(T) > params.mouth_open_threshold
    D = geometry.destination_shape(S_al, T, params.jaw_weight * (1.0 - beta),
                                   "target_opening" if mouth_open else "follow")

    # backward warp: target pixel -> source pixel; far anchors follow the plain similarity
    anchors_t = warp.boundary_anchors(np.concatenate([T, D]), 1.8)
    anchors_s = geometry.apply_affine(geometry.invert_affine(A), anchors_t)
    # keep the warp one-to-one: no landmark triangle may flip between the target and destination shapes
    ctrl_t = np.concatenate([T, anchors_t])
    tri = Delaunay(ctrl_t).simplices
    D = geometry.untangle(np.concatenate([D, anchors_t]), ctrl_t, tri)[:68]
    tps = warp.ThinPlateSpline.fit(np.concatenate([D, anchors_t]), np.concatenate([S, anchors_s]),
                                   params.tps_regularisation)
    mx, my = warp.remap_grid(tps, (h, w), max(1, int(params.grid_step)))
    warped = cv2.remap(src_img.astype(np.float32), mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    sh, sw = src_img.shape[:2]
    inside_src = ((mx >= 0) & (mx <= sw - 1) & (my >= 0) & (my <= sh - 1)).astype(np.uint8)

    src_lin = colour.srgb_to_linear(warped)
    tgt_lin = colour.srgb_to_linear(tgt)

    # mask: destination face polygon within the target's (grown) polygon and the source's extent; the
    # forehead band stops where either face's hair starts
    forehead: float | np.ndarray = params.forehead
    if params.adaptive_forehead:
        full = np.ones((h, w), np.uint8)
        ext_s = masks.forehead_extent(np.cbrt(colour.luminance(src_lin)), inside_src, D, params.forehead)
        ext_t = masks.forehead_extent(np.cbrt(colour.luminance(tgt_lin)), full, T, params.forehead)
        forehead = np.maximum(np.minimum(ext_s, ext_t), 0.04)
    zone = masks.allowed_zone((h, w), T, params.forehead, params.grow)
    hard = masks.polygon_mask((h, w), masks.face_polygon(D, forehead, convex=False)) & zone & inside_src
    mask = masks.feathered(hard, params.feather * size)
    # hair over the face's sides (either face's): keep the plate there, outside the inner features
    if params.occlusion:
        outer = hard & (1 - masks.features_hull((h, w), T, 0.04)) & (1 - masks.features_hull((h, w), D, 0.04))
        like = np.minimum(
            masks.skin_likeness(np.cbrt(colour.luminance(src_lin)), masks.skin_mask((h, w), D) & inside_src),
            masks.skin_likeness(np.cbrt(colour.luminance(tgt_lin)), masks.skin_mask((h, w), T)))
        like = np.where(outer > 0, like, 1.0).astype(np.float32)
        like = cv2.GaussianBlur(like, (0, 0), max(1.0, 0.02 * size))
        mask = mask * like

    # mouth interior: where the target's mouth is open show its own interior (teeth, tongue)
    hole = np.zeros((h, w), np.float32)
    if mouth_open:
        hard_hole = masks.polygon_mask((h, w), cv2.convexHull(T[geometry.INNER_MOUTH].astype(np.float32)).reshape(-1, 2))
        sigma = max(0.7, 0.01 * size)
        k = 2 * int(np.ceil(1.5 * sigma)) + 1  # grow by ~1.5 sigma so the blurred hole is ~1 inside the lips
        grown = cv2.dilate(hard_hole, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
        hole = np.clip(cv2.GaussianBlur(grown.astype(np.float32), (0, 0), sigma), 0.0, 1.0)
        mask = mask * (1.0 - hole)

    # colour: statistics over each face's own skin, in linear light
    src_skin = (masks.skin_mask((h, w), D) & inside_src).astype(np.float32)
    tgt_skin = masks.skin_mask((h, w), T).astype(np.float32)
    if src_skin.sum() < 16 or tgt_skin.sum() < 16:
        src_skin = tgt_skin = (mask > 0).astype(np.float32)
    if params.match_sharpness:
        src_lin = colour.match_sharpness(src_lin, tgt_lin, src_skin, tgt_skin)
    matched = colour.match_statistics(src_lin, tgt_lin, src_skin, tgt_skin)
    if params.shading_degree > 0:
        both = masks.skin_mask((h, w), D, 0.8 * float(np.min(forehead))) & masks.skin_mask((h, w), T, 0.8 * float(np.min(forehead))) \
            & inside_src
        centre = (float(T[:, 0].mean()), float(T[:, 1].mean()))
        ratio = colour.shading_field(matched, tgt_lin, both.astype(np.float32), centre, size, params.shading_degree)
        matched = matched * ratio[..., None]
    if params.edge_match > 0:
        matched = blend.edge_correction(matched, tgt_lin, hard, params.feather * size, params.edge_match * size)
    face = colour.linear_to_srgb(colour.fit_gamut(matched))

    mask = np.where(mask > 1e-4, mask, 0.0).astype(np.float32)
    face = np.where(mask[..., None] > 0, face, tgt).astype(np.float32)
    return SwapResult(face=np.ascontiguousarray(face), mask=np.ascontiguousarray(mask))
