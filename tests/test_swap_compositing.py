"""Tests of the swap's two stages: the cacheable model stage and the compositing stage with artist controls.

Real faces from ../shared/data/faces; tests that need them are skipped with a reason when the folder is
absent.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest

from inference_server.compositing.classical import composite_face_crop, decode_model_space
from inference_server.compositing.classical_output import FLAG_SOURCE_SKIN, FLAG_TARGET_SKIN, SwapModelOutput
from inference_server.compositing.colour import luminance, match_histograms
from inference_server.compositing.controls import CompositeControls
from inference_server.compositing.regions import REGION_NAMES, region_masks, region_weight_map
from inference_server.faces.geometry import face_size
from inference_server.faces.sources import prepare_sources
from inference_server.plates.colour import srgb_decode as srgb_to_linear
from inference_server.plates.colour import srgb_encode as linear_to_srgb
from inference_server.swap import swap_face, swap_model

from support import FACES_DIR as FACES
from support import crop_target
from support import face_photo as load_rgb8
needs_faces = pytest.mark.skipif(not FACES.is_dir(), reason=f"face test photos not found at {FACES}")


def hull_mask(shape_hw, pts: np.ndarray, erode: int = 0) -> np.ndarray:
    m = np.zeros(shape_hw, np.uint8)
    cv2.fillConvexPoly(m, cv2.convexHull(np.round(pts).astype(np.int32)), 1)
    if erode:
        m = cv2.erode(m, np.ones((2 * erode + 1, 2 * erode + 1), np.uint8))
    return m > 0


@pytest.fixture(scope="module")
def case():
    """Biden's face onto Obama's: the model stage once, shared by the tests."""
    if not FACES.is_dir():
        pytest.skip(f"face test photos not found at {FACES}")
    from inference_server.faces.dlib_models import DlibFaceModels
    try:
        models = DlibFaceModels()
    except Exception as exc:  # pragma: no cover - environment without the weights
        pytest.skip(f"dlib models unavailable: {exc}")
    src = prepare_sources([("biden", load_rgb8("fr_biden2.jpg"))], models)[0]
    tgt8 = load_rgb8("fr_obama.jpg")
    lm = models.detect(tgt8)[0].landmarks
    crop, clm, _ = crop_target(tgt8, lm)
    out = swap_model(crop, clm, src)
    return {"src": src, "crop": crop, "lm": clm, "out": out, "lin": srgb_to_linear(crop)}


def box_of(out: SwapModelOutput) -> tuple[slice, slice]:
    y0, x0, y1, x1 = (int(v) for v in out.box)
    return slice(y0, y1), slice(x0, x1)


# --------------------------------------------------------------------------------------------------
# regions

@needs_faces
def test_region_masks_partition_the_face_and_follow_the_landmarks(case) -> None:
    lm, shape = case["lm"], case["crop"].shape[:2]
    size = face_size(lm)
    masks = region_masks(shape, lm, size)
    assert tuple(masks) == REGION_NAMES
    for name, m in masks.items():
        assert m.shape == shape and m.dtype == np.float32, name
        assert m.min() >= 0.0 and m.max() <= 1.0, name
    total = sum(masks.values())
    assert np.abs(total - 1.0).max() < 1e-5

    def at(name: str, pts: np.ndarray) -> np.ndarray:
        p = np.round(np.atleast_2d(pts)).astype(int)
        return masks[name][p[:, 1], p[:, 0]]

    chin = lm[8]
    assert at("eyes", lm[36:48]).min() > 0.9 and at("eyes", chin).max() < 1e-3
    assert at("mouth", lm[48:68]).min() > 0.99 and at("mouth", lm[36:48]).max() == 0.0
    assert at("brows", lm[[19, 24]]).min() > 0.9
    assert at("nose", lm[[28, 29, 30, 33]]).min() > 0.9
    assert at("jaw", lm[[6, 8, 10]] + (lm[[57]] - lm[[6, 8, 10]]) * 0.2).min() > 0.5
    assert at("cheeks", 0.5 * (lm[[2, 14]] + lm[[31, 35]])).min() > 0.5
    brow_top = lm[[19, 24]] + (lm[[37, 44]] - lm[[8]]) / np.linalg.norm(lm[[37, 44]] - lm[[8]], axis=1,
                                                                       keepdims=True) * 0.15 * size
    assert at("forehead", brow_top).min() > 0.5
    # each feature is mostly 0 far from its landmarks
    assert masks["mouth"][hull_mask(shape, lm[36:48], 0)].max() == 0.0
    # all weights 1 give exactly the full mask; a zero weight on the mouth zeroes its core exactly
    assert np.array_equal(region_weight_map(shape, lm, size, {}), np.ones(shape, np.float32))
    wm = region_weight_map(shape, lm, size, {"mouth": 0.0})
    assert wm[hull_mask(shape, lm[48:60])].max() == 0.0 and wm[hull_mask(shape, lm[36:48])].min() == 1.0


# --------------------------------------------------------------------------------------------------
# compositing controls

@needs_faces
def test_mouth_weight_zero_keeps_the_plate_mouth_and_swaps_the_eyes(case) -> None:
    lin, lm, out = case["lin"], case["lm"], case["out"]
    face, mask = composite_face_crop(lin, lm, out, CompositeControls(regions=(("mouth", 0.0),)))
    full_face, full_mask = composite_face_crop(lin, lm, out, CompositeControls())
    mouth = hull_mask(lin.shape[:2], lm[48:60])
    lips = mouth & ~cv2.dilate(hull_mask(lin.shape[:2], lm[60:68]).astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    eyes = hull_mask(lin.shape[:2], lm[36:42]) | hull_mask(lin.shape[:2], lm[42:48])
    assert full_mask[lips].mean() > 0.5          # without the control the lips are swapped
    assert mask[mouth].max() == 0.0              # with it the mouth area is the plate exactly
    assert np.array_equal(face[mouth], lin[mouth])
    composite = lin + mask[..., None] * (face - lin)
    assert np.array_equal(composite[mouth], lin[mouth])
    assert mask[eyes].min() > 0.9                # the eyes still change
    assert np.array_equal(mask[eyes], full_mask[eyes])
    assert np.abs(composite[eyes] - lin[eyes]).mean() > 0.01
    # the same through swap_face and the sRGB model space
    res = swap_face(case["crop"], lm, case["src"], controls=CompositeControls(regions=(("mouth", 0.0),)))
    assert res.mask[mouth].max() == 0.0 and np.array_equal(res.face[mouth], case["crop"][mouth])


@needs_faces
def test_blend_scales_the_mask_and_zero_blend_is_empty(case) -> None:
    lin, lm, out = case["lin"], case["lm"], case["out"]
    face0, mask0 = composite_face_crop(lin, lm, out, CompositeControls(blend=0.0))
    assert mask0.dtype == np.float32 and not mask0.any()
    assert np.array_equal(face0, lin)
    _, full = composite_face_crop(lin, lm, out)
    _, half = composite_face_crop(lin, lm, out, CompositeControls(blend=0.5))
    assert np.allclose(half, 0.5 * full, atol=1e-7) and np.array_equal(half > 0, full > 0)


@needs_faces
def test_mask_is_zero_wherever_the_model_coverage_is_zero(case) -> None:
    lin, lm, out = case["lin"], case["lm"], case["out"]
    ys, xs = box_of(out)
    for ctl in (CompositeControls(), CompositeControls(erode=-0.1), CompositeControls(feather=0.2, grain=1.0)):
        face, mask = composite_face_crop(lin, lm, out, ctl)
        outside = np.ones(mask.shape, bool)
        outside[ys, xs] = out.allowed_distance == 0
        assert mask[outside].max() == 0.0, ctl
        assert np.array_equal(face[mask == 0], lin[mask == 0]), ctl
        assert mask.min() >= 0.0 and mask.max() <= 1.0


@needs_faces
def test_erode_and_feather_move_and_soften_the_edge(case) -> None:
    lin, lm, out = case["lin"], case["lm"], case["out"]
    _, base = composite_face_crop(lin, lm, out)
    _, shrunk = composite_face_crop(lin, lm, out, CompositeControls(erode=0.05))
    _, grown = composite_face_crop(lin, lm, out, CompositeControls(erode=-0.05))
    _, soft = composite_face_crop(lin, lm, out, CompositeControls(feather=0.1))
    assert not (shrunk > 0)[base == 0].any() and (shrunk > 0).sum() < 0.9 * (base > 0).sum()
    assert (grown > 0).sum() > 1.1 * (base > 0).sum()
    assert (grown[base > 0] >= base[base > 0] - 1e-6).all()
    assert np.array_equal(soft > 0, base > 0)  # same support, softer ramp
    assert (soft <= base + 1e-6).all() and soft.sum() < base.sum()
    assert ((soft > 0) & (soft < 0.99)).sum() > 1.3 * ((base > 0) & (base < 0.99)).sum()


def _skin_stats(img: np.ndarray, sel: np.ndarray, q=(10, 50, 90)) -> tuple[np.ndarray, np.ndarray]:
    px = img[sel]
    return px.mean(0), np.percentile(px, q, axis=0)


@needs_faces
def test_colour_match_modes(case) -> None:
    lm, out = case["lm"], case["out"]
    # a graded plate (warm cast, a stop darker): the colour match follows the plate at composite time
    lin = (case["lin"] * np.array([0.6, 0.45, 0.3], np.float32)).astype(np.float32)
    win = box_of(out)
    src_skin = (out.flags & FLAG_SOURCE_SKIN) > 0
    tgt_skin = (out.flags & FLAG_TARGET_SKIN) > 0
    t_mean, t_pct = _skin_stats(lin[win], tgt_skin)

    results = {}
    for mode in ("none", "mean-std", "histogram"):
        face, mask = composite_face_crop(lin, lm, out, CompositeControls(colour_match=mode))
        results[mode] = (face[win], mask[win])

    # none: the warped source face as it is
    face, mask = results["none"]
    live = mask > 0
    assert np.array_equal(face[live], decode_model_space(out.source)[live])
    n_mean, n_pct = _skin_stats(face, src_skin)
    assert np.abs(n_mean - t_mean).max() > 0.3 * t_mean.max()
    # mean-std: the skin's mean colour lands near the target's
    m_mean, _ = _skin_stats(results["mean-std"][0], src_skin)
    assert np.abs(m_mean - t_mean).max() < 0.1 * t_mean.max()
    # histogram: the skin's percentiles land near the target's
    _, h_pct = _skin_stats(results["histogram"][0], src_skin)
    assert np.abs(h_pct - t_pct).max() < 0.15 * t_pct.max()
    assert np.abs(h_pct - t_pct).sum() < 0.25 * np.abs(n_pct - t_pct).sum()
    # the mask does not depend on the colour mode
    assert np.array_equal(results["none"][1], results["histogram"][1])


def test_match_histograms_maps_percentiles() -> None:
    rng = np.random.default_rng(3)
    src = rng.gamma(2.0, 0.1, (64, 64, 3)).astype(np.float32)
    tgt = (rng.uniform(0.1, 0.5, (64, 64, 3)) * np.array([1.0, 0.8, 0.6])).astype(np.float32)
    w = np.ones((64, 64), np.float32)
    out = match_histograms(src, tgt, w, w)
    q = [10, 25, 50, 75, 90]
    assert np.abs(np.percentile(out.reshape(-1, 3), q, axis=0) - np.percentile(tgt.reshape(-1, 3), q, axis=0)).max() < 0.02
    # monotone per channel
    order = np.argsort(src[..., 0].ravel())
    assert (np.diff(out[..., 0].ravel()[order]) >= -1e-6).all()


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum() + 1e-20))


@needs_faces
def test_grain_puts_the_plate_detail_back(case) -> None:
    lm, out = case["lm"], case["out"]
    rng = np.random.default_rng(7)
    # a grainy plate: the photo plus luminance-proportional film-like grain
    lin = case["lin"] * (1.0 + 0.08 * rng.standard_normal(case["lin"].shape[:2])[..., None]).astype(np.float32)
    lin = np.maximum(lin, 0.0).astype(np.float32)

    def hp(img: np.ndarray) -> np.ndarray:
        y = luminance(np.ascontiguousarray(img))
        return y - cv2.GaussianBlur(y, (0, 0), 1.5)

    face0, mask = composite_face_crop(lin, lm, out, CompositeControls(grain=0.0))
    face1, mask1 = composite_face_crop(lin, lm, out, CompositeControls(grain=1.0))
    assert np.array_equal(mask, mask1)
    inside = cv2.erode((mask > 0.9).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    c0 = _corr(hp(face0)[inside], hp(lin)[inside])
    c1 = _corr(hp(face1)[inside], hp(lin)[inside])
    assert c1 > c0 + 0.3 and c1 > 0.6, (c0, c1)
    half, _ = composite_face_crop(lin, lm, out, CompositeControls(grain=0.5))
    assert c0 < _corr(hp(half)[inside], hp(lin)[inside]) < c1


# --------------------------------------------------------------------------------------------------
# controls

@pytest.mark.parametrize("kwargs, message", [
    ({"blend": 1.5}, "blend"),
    ({"blend": float("nan")}, "blend"),
    ({"blend": "x"}, "blend"),
    ({"regions": (("lips", 0.0),)}, "unknown region"),
    ({"regions": (("mouth", 0.0), ("mouth", 1.0))}, "more than once"),
    ({"regions": (("mouth", -0.1),)}, "setting 'regions.mouth' must be within 0..1"),
    ({"regions": (("mouth",),)}, "pairs"),
    ({"feather": -0.1}, "feather"),
    ({"erode": 0.9}, "erode"),
    ({"grain": 2.0}, "grain"),
    ({"colour_match": "lab"}, "colour_match"),
])
def test_controls_validation(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message) as ei:
        CompositeControls(**kwargs).validated()
    assert "\n" not in str(ei.value)


def test_controls_normalised() -> None:
    c = CompositeControls(blend=1, regions=(("mouth", 0), ("eyes", 0.5))).validated()
    assert c.regions == (("eyes", 0.5), ("mouth", 0.0)) and isinstance(c.blend, float)
    assert c.region_weights()["skin"] == 1.0 and c.region_weights()["mouth"] == 0.0


@needs_faces
def test_composite_rejects_a_crop_of_another_size(case) -> None:
    with pytest.raises(ValueError, match="crop"):
        composite_face_crop(case["lin"][:-1], case["lm"], case["out"])


# --------------------------------------------------------------------------------------------------
# model output: determinism, serialisation, equivalence with swap_face

@needs_faces
def test_model_stage_is_deterministic(case) -> None:
    again = swap_model(case["crop"].copy(), case["lm"].copy(), case["src"])
    assert again == case["out"]
    a, b = again.to_arrays(), case["out"].to_arrays()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    f1, m1 = composite_face_crop(case["lin"], case["lm"], again, CompositeControls(grain=0.3, erode=-0.02))
    f2, m2 = composite_face_crop(case["lin"], case["lm"], case["out"], CompositeControls(grain=0.3, erode=-0.02))
    assert np.array_equal(f1, f2) and np.array_equal(m1, m2)


@needs_faces
def test_model_output_round_trips_through_arrays(case) -> None:
    out = case["out"]
    arrays = out.to_arrays()
    assert all(isinstance(v, np.ndarray) for v in arrays.values())
    for name in ("source", "edge_distance", "allowed_distance", "keep", "mouth_interior"):
        assert arrays[name].dtype == np.float16, name
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    buf.seek(0)
    with np.load(buf) as z:
        back = SwapModelOutput.from_arrays({k: z[k] for k in z.files})
    assert back == out
    f1, m1 = composite_face_crop(case["lin"], case["lm"], back)
    f2, m2 = composite_face_crop(case["lin"], case["lm"], out)
    assert np.array_equal(f1, f2) and np.array_equal(m1, m2)
    assert out.nbytes < 8 * int(np.prod(out.crop_hw)) * 2
    broken = dict(arrays)
    del broken["keep"]
    with pytest.raises(ValueError, match="keep"):
        SwapModelOutput.from_arrays(broken)
    with pytest.raises(ValueError, match="dtype"):
        SwapModelOutput.from_arrays({**arrays, "source": arrays["source"].astype(np.float32)})


@needs_faces
def test_swap_face_is_the_composition_of_the_two_stages(case) -> None:
    crop, lm = case["crop"], case["lm"]
    res = swap_face(crop, lm, case["src"])
    face_lin, mask = composite_face_crop(srgb_to_linear(crop), lm, case["out"], CompositeControls())
    assert np.array_equal(res.mask, mask)
    assert np.array_equal(res.face, np.where(mask[..., None] > 0, linear_to_srgb(face_lin), crop))
