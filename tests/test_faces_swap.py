"""Tests of the embedded face models (dlib) and the classical face swap, on real photos.

The photos live in ../shared/data/faces (not in the repository); tests that need them are skipped with
a reason when that folder is absent.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from inference_server.compositing.colour import match_statistics
from inference_server.faces.dlib_models import DlibFaceModels, model_dir
from inference_server.faces.errors import NoFaceError
from inference_server.faces.geometry import apply_affine, face_size, similarity_fit
from inference_server.faces.pose import head_pose
from inference_server.faces.sources import SourceFace, choose_source, prepare_sources
from inference_server.faces.types import FaceDetection
from inference_server.plates.colour import srgb_decode as srgb_to_linear
from inference_server.plates.colour import srgb_encode as linear_to_srgb
from inference_server.swap import SwapParams, SwapResult, swap_face

from support import FACES_DIR as FACES
from support import crop_target
from support import face_photo as load_rgb8
needs_faces = pytest.mark.skipif(not FACES.is_dir(), reason=f"face test photos not found at {FACES}")

# iBUG 68 index permutation for a horizontal mirror
MIRROR = np.array([16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17,
                   27, 28, 29, 30, 35, 34, 33, 32, 31, 45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40, 54, 53, 52,
                   51, 50, 49, 48, 59, 58, 57, 56, 55, 64, 63, 62, 61, 60, 67, 66, 65])


@pytest.fixture(scope="module")
def models() -> DlibFaceModels:
    try:
        return DlibFaceModels()
    except Exception as exc:  # pragma: no cover - environment without the weights
        pytest.skip(f"dlib models unavailable: {exc}")


def composite_rgb8(rgb8: np.ndarray, box, res: SwapResult) -> np.ndarray:
    """Linear-light composite as the server does, then back to an 8-bit sRGB image."""
    x0, y0, x1, y1 = box
    plate = srgb_to_linear(rgb8.astype(np.float32) / 255.0)
    region = plate[y0:y1, x0:x1]
    face = srgb_to_linear(res.face)
    m = res.mask[..., None]
    plate[y0:y1, x0:x1] = np.where(m > 0, region + m * (face - region), region)
    return (linear_to_srgb(plate) * 255 + 0.5).astype(np.uint8)


def face_zone(shape_hw, pts: np.ndarray, grow: float) -> np.ndarray:
    """The area a face process may touch: landmark hull + raised brows, grown by ``grow`` x face size."""
    size = face_size(pts)
    top = pts[17:27].copy()
    top[:, 1] -= 0.45 * size
    m = np.zeros(shape_hw, np.uint8)
    cv2.fillConvexPoly(m, cv2.convexHull(np.concatenate([pts, top]).astype(np.int32)), 1)
    k = int(2 * grow * size) | 1
    return cv2.dilate(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))) > 0


# --------------------------------------------------------------------------------------------------
# models

def test_model_dir_has_the_dat_files() -> None:
    d = model_dir()
    assert (d / "shape_predictor_68_face_landmarks.dat").is_file()
    assert (d / "dlib_face_recognition_resnet_model_v1.dat").is_file()


def test_missing_model_dir_is_a_clear_error(tmp_path: Path) -> None:
    from inference_server.faces.errors import ModelFilesMissingError
    with pytest.raises(ModelFilesMissingError, match="shape_predictor_68"):
        DlibFaceModels(tmp_path)


@needs_faces
def test_detect_shapes_and_order(models: DlibFaceModels) -> None:
    img = load_rgb8("fr_two_people.jpg")
    dets = models.detect(img)
    assert len(dets) == 2
    assert all(isinstance(d, FaceDetection) for d in dets)
    assert dets[0].area >= dets[1].area
    for d in dets:
        assert d.landmarks.shape == (68, 2) and d.landmarks.dtype == np.float32
        x0, y0, x1, y1 = d.rect
        c = d.landmarks.mean(0)
        assert x0 <= c[0] <= x1 and y0 <= c[1] <= y1


@needs_faces
def test_detect_downscaled_matches_full(models: DlibFaceModels) -> None:
    img = load_rgb8("fr_biden2.jpg")  # 1200 px: detection runs on a 600 px copy when max_side=600
    full = models.detect(img, max_side=4000)[0]
    small = models.detect(img, max_side=600)[0]
    assert np.abs(np.array(full.rect) - np.array(small.rect)).max() < 0.12 * face_size(full.landmarks)
    assert np.abs(full.landmarks - small.landmarks).mean() < 0.03 * face_size(full.landmarks)


@needs_faces
def test_embedding_same_person_closer_than_different(models: DlibFaceModels) -> None:
    obama = load_rgb8("fr_obama.jpg")
    lm = models.detect(obama)[0].landmarks
    e1 = models.embed(obama, lm)
    assert e1.shape == (128,) and e1.dtype == np.float64
    small = cv2.resize(obama, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    e2 = models.embed(small, models.detect(small)[0].landmarks)
    biden = load_rgb8("fr_biden2.jpg")
    e3 = models.embed(biden, models.detect(biden)[0].landmarks)
    assert np.linalg.norm(e1 - e2) < 0.4 < np.linalg.norm(e1 - e3)


def test_weights_hash_is_cached_hex(models: DlibFaceModels) -> None:
    h = models.weights_hash()
    assert len(h) == 64 and int(h, 16) >= 0
    assert models.weights_hash() is h
    assert models.identifier


# --------------------------------------------------------------------------------------------------
# pose

@needs_faces
def test_pose_mirror_flips_yaw_and_roll(models: DlibFaceModels) -> None:
    img = load_rgb8("lp_d12.jpg")  # head turned
    lm = models.detect(img)[0].landmarks
    yaw, pitch, roll = head_pose(lm)
    mirrored = np.stack([img.shape[1] - 1 - lm[:, 0], lm[:, 1]], 1)[MIRROR]
    myaw, mpitch, mroll = head_pose(mirrored)
    assert abs(yaw) > 10
    assert myaw == pytest.approx(-yaw, abs=1e-6) and mroll == pytest.approx(-roll, abs=1e-6)
    assert mpitch == pytest.approx(pitch, abs=1e-6)


@needs_faces
def test_pose_roll_follows_image_rotation(models: DlibFaceModels) -> None:
    img = load_rgb8("fr_obama.jpg")
    lm = models.detect(img)[0].landmarks.astype(np.float64)
    c = lm.mean(0)
    a = np.deg2rad(20.0)  # rotate clockwise on screen (y down)
    R = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    rot = (lm - c) @ R.T + c
    assert head_pose(rot)[2] - head_pose(lm)[2] == pytest.approx(20.0, abs=1.0)
    assert head_pose(rot)[0] == pytest.approx(head_pose(lm)[0], abs=3.0)


# --------------------------------------------------------------------------------------------------
# sources

@needs_faces
def test_prepare_sources_and_no_face_error(models: DlibFaceModels) -> None:
    src = prepare_sources([("obama", load_rgb8("fr_obama.jpg"))], models)[0]
    assert isinstance(src, SourceFace)
    assert src.image.dtype == np.float32 and src.image.ndim == 3 and src.image.max() <= 1.0
    assert src.landmarks.shape == (68, 2)
    assert (src.landmarks >= 0).all() and (src.landmarks[:, 0] < src.image.shape[1]).all()
    assert src.embedding.shape == (128,)
    blank = np.full((200, 200, 3), 128, np.uint8)
    with pytest.raises(NoFaceError) as ei:
        prepare_sources([("blank.png", blank)], models)
    assert ei.value.label == "blank.png"


@needs_faces
def test_choose_source_matches_head_pose(models: DlibFaceModels) -> None:
    turned = load_rgb8("lp_d12.jpg")        # yaw ~ +20
    mirrored = np.ascontiguousarray(turned[:, ::-1])  # the same head turned the other way
    frontal = load_rgb8("fr_obama.jpg")
    sources = prepare_sources([("frontal", frontal), ("turned", turned), ("mirrored", mirrored)], models)
    lm_turned = models.detect(turned)[0].landmarks
    lm_mirror = models.detect(mirrored)[0].landmarks
    lm_front = models.detect(load_rgb8("fr_biden2.jpg"))[0].landmarks
    assert choose_source(sources, lm_turned).label == "turned"
    assert choose_source(sources, lm_mirror).label == "mirrored"
    assert choose_source(sources, lm_front).label == "frontal"
    with pytest.raises(ValueError):
        choose_source([], lm_front)


# --------------------------------------------------------------------------------------------------
# swap

@pytest.fixture(scope="module")
def pair(models: DlibFaceModels):
    if not FACES.is_dir():
        pytest.skip(f"face test photos not found at {FACES}")
    src = prepare_sources([("biden", load_rgb8("fr_biden2.jpg"))], models)[0]
    tgt8 = load_rgb8("fr_obama.jpg")
    lm = models.detect(tgt8)[0].landmarks
    crop, clm, box = crop_target(tgt8, lm)
    res = swap_face(crop, clm, src)
    return src, tgt8, lm, crop, clm, box, res


def test_swap_shapes_dtypes_ranges(pair) -> None:
    _, _, _, crop, _, _, res = pair
    assert isinstance(res, SwapResult)
    assert res.face.shape == crop.shape and res.face.dtype == np.float32
    assert res.mask.shape == crop.shape[:2] and res.mask.dtype == np.float32
    assert np.isfinite(res.face).all() and res.face.min() >= 0 and res.face.max() <= 1
    assert res.mask.min() >= 0 and res.mask.max() == pytest.approx(1.0)
    assert (res.mask > 0.5).mean() > 0.1  # it does cover the face


def test_swap_mask_vanishes_outside_the_face_zone(pair) -> None:
    _, _, _, crop, clm, _, res = pair
    allowed = face_zone(crop.shape[:2], clm, grow=0.15)
    assert res.mask[~allowed].max() == 0.0
    # and it is zero along the crop border (no hard edge where the crop ends)
    assert res.mask[0].max() == res.mask[-1].max() == res.mask[:, 0].max() == res.mask[:, -1].max() == 0.0


def test_swap_mask_is_feathered(pair) -> None:
    _, _, _, _, clm, _, res = pair
    gy, gx = np.gradient(res.mask)
    # the steepest step of the mask is a small fraction of full strength per pixel
    assert np.hypot(gx, gy).max() < 0.25
    # and there is a real transition band, not a hard cut
    assert ((res.mask > 0.05) & (res.mask < 0.95)).sum() > 0.5 * face_size(clm) * 4


def test_swap_is_deterministic(pair) -> None:
    src, _, _, crop, clm, _, res = pair
    again = swap_face(crop.copy(), clm.copy(), src)
    assert np.array_equal(again.face, res.face) and np.array_equal(again.mask, res.mask)


def test_swap_moves_identity_toward_the_source(models: DlibFaceModels, pair) -> None:
    src, tgt8, lm, _, _, box, res = pair
    out8 = composite_rgb8(tgt8, box, res)
    dets = models.detect(out8)
    assert dets, "no face found in the swapped image"
    e_out = models.embed(out8, dets[0].landmarks)
    e_tgt = models.embed(tgt8, lm)
    d_src = np.linalg.norm(e_out - src.embedding)
    d_tgt = np.linalg.norm(e_out - e_tgt)
    assert d_src < d_tgt
    assert d_src < 0.6  # dlib's "same person" threshold


def test_swap_leaves_pixels_outside_mask_untouched(pair) -> None:
    _, tgt8, _, _, _, box, res = pair
    out8 = composite_rgb8(tgt8, box, res)
    x0, y0, x1, y1 = box
    outside = np.ones(tgt8.shape[:2], bool)
    outside[y0:y1, x0:x1] = res.mask == 0
    ref = composite_rgb8(tgt8, box, SwapResult(face=res.face, mask=np.zeros_like(res.mask)))
    assert np.array_equal(out8[outside], ref[outside])


def test_swap_greyscale_target_stays_grey(models: DlibFaceModels) -> None:
    if not FACES.is_dir():
        pytest.skip(f"face test photos not found at {FACES}")
    src = prepare_sources([("rose", load_rgb8("fr_rose_leslie.jpg"))], models)[0]
    grey8 = load_rgb8("gfpgan_adele_crop.png")
    grey8 = np.repeat(cv2.cvtColor(grey8, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    lm = models.detect(grey8)[0].landmarks
    crop, clm, _ = crop_target(grey8, lm)
    res = swap_face(crop, clm, src)
    inside = res.mask > 0
    sat = res.face[inside].max(1) - res.face[inside].min(1)
    assert np.percentile(sat, 99) < 0.02


def test_swap_open_target_mouth_keeps_its_interior(models: DlibFaceModels) -> None:
    if not FACES.is_dir():
        pytest.skip(f"face test photos not found at {FACES}")
    src = prepare_sources([("obama", load_rgb8("fr_obama.jpg"))], models)[0]
    tgt8 = load_rgb8("lp_d9.jpg")  # wide open mouth
    lm = models.detect(tgt8)[0].landmarks
    crop, clm, _ = crop_target(tgt8, lm)
    res = swap_face(crop, clm, src)
    inner: np.ndarray = np.zeros(crop.shape[:2], np.uint8)
    cv2.fillConvexPoly(inner, cv2.convexHull(clm[60:68].astype(np.int32)), 1)
    inner = cv2.erode(inner, np.ones((5, 5), np.uint8)) > 0
    assert res.mask[inner].max() < 0.05
    closed = swap_face(crop, clm, src, SwapParams(keep_mouth_interior=False))
    assert closed.mask[inner].mean() > 0.9


# --------------------------------------------------------------------------------------------------
# building blocks

def test_similarity_fit_recovers_transform() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 100, (30, 2))
    a, s, t = 0.3, 1.7, np.array([5.0, -3.0])
    R = s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    q = p @ R.T + t
    A = similarity_fit(p, q)
    assert np.allclose(apply_affine(A, p), q, atol=1e-9)


def test_colour_match_neutral_target_gives_neutral_face() -> None:
    rng = np.random.default_rng(1)
    src = rng.uniform(0.05, 0.8, (32, 32, 3)).astype(np.float32) * np.array([1.0, 0.7, 0.5], np.float32)
    tgt = np.repeat(rng.uniform(0.1, 0.6, (32, 32, 1)), 3, axis=2).astype(np.float32)
    w = np.ones((32, 32), np.float32)
    out = match_statistics(src, tgt, w, w)
    assert np.abs(out - out.mean(2, keepdims=True)).max() < 1e-3 * max(1.0, float(out.max()))


def test_srgb_round_trip() -> None:
    x = np.linspace(0, 1, 1001, dtype=np.float32)
    assert np.abs(linear_to_srgb(srgb_to_linear(x)) - x).max() < 1e-5
    assert srgb_to_linear(np.float32(0.4614)) == pytest.approx(0.18, abs=1e-3)
