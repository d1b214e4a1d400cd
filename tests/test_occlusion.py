"""Occlusion masks (FaceFusion's xseg format): what is in front of the face stays the plate's.

The occluders are small synthetic ONNX files built here with the real files' input (``input``, NHWC
``(1, 256, 256, 3)`` float32) and output layout (``(1, 256, 256, 1)``, 1 = face seen): one marks a rectangle
over the mouth of its 256 px ``arcface_128`` square, one returns one channel of its input (to pin the colour
order and layout). Real photos from ../shared/data/faces, real EXR plates, a real server.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from support import face_landmarks, face_zone, load_rgb8, make_plate, read_exr, same_bits

from inference_server.compositing.assembly import controlled_mask
from inference_server.compositing.controls import CompositeControls
from inference_server.compositing.regions import refined_region_weight_map, region_weight_map
from inference_server.models.alignment import TEMPLATES, estimate_alignment, points5_from_68
from inference_server.models.onnx_occluder import (BLUR_SIGMA, OCCLUDER_SIZE, OCCLUDER_TEMPLATE, XsegOccluder,
                                                   keep_to_crop, occluder_postprocess, occluder_preprocess,
                                                   soften_keep)

S = OCCLUDER_SIZE


# -- synthetic xseg files ---------------------------------------------------------------------------

def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="facebridge-tests")
    model.ir_version = 9
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def _io(name: str, shape: list[int]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _channel_nodes(channel: int) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """Nodes giving ``picked`` = ``input[..., channel:channel + 1]`` (NHWC)."""
    inits = [numpy_helper.from_array(np.array([channel], np.int64), "starts"),
             numpy_helper.from_array(np.array([channel + 1], np.int64), "ends"),
             numpy_helper.from_array(np.array([3], np.int64), "axes")]
    return [helper.make_node("Slice", ["input", "starts", "ends", "axes"], ["picked"])], inits


def mouth_rectangle() -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` (half-open, model pixels) over the mouth of the 256 px arcface_128 square, from the
    template's mouth corners: their span plus 5 % of the side each way, 7 % above and 9 % below them."""
    corners = TEMPLATES[OCCLUDER_TEMPLATE][3:5] * S
    y = float(corners[:, 1].mean())
    return (int(corners[0, 0] - 0.05 * S), int(y - 0.07 * S), int(math.ceil(corners[1, 0] + 0.05 * S)),
            int(math.ceil(y + 0.09 * S)))


def rectangle_keep(rect: tuple[int, int, int, int]) -> np.ndarray:
    """(1, S, S, 1) float32: 1 everywhere but 0 inside ``rect``."""
    x0, y0, x1, y1 = rect
    mask = np.ones((1, S, S, 1), np.float32)
    mask[0, y0:y1, x0:x1, 0] = 0.0
    return mask


def make_xseg_rectangle(folder: Path, name: str, rect: tuple[int, int, int, int]) -> Path:
    """xseg-format file whose output marks ``rect`` occluded (the input tied in times zero)."""
    nodes, inits = _channel_nodes(0)
    nodes += [helper.make_node("Mul", ["picked", "zero"], ["nothing"]),
              helper.make_node("Add", ["nothing", "keep"], ["output"])]
    inits += [numpy_helper.from_array(np.zeros((), np.float32), "zero"),
              numpy_helper.from_array(rectangle_keep(rect), "keep")]
    graph = helper.make_graph(nodes, "xseg_rectangle", [_io("input", [1, S, S, 3])], [_io("output", [1, S, S, 1])],
                              initializer=inits)
    return _save(graph, folder / name)


def make_xseg_channel(folder: Path, channel: int, name: str = "xseg_channel.onnx") -> Path:
    """xseg-format file whose output is channel ``channel`` of its (BGR) input."""
    nodes, inits = _channel_nodes(channel)
    nodes.append(helper.make_node("Identity", ["picked"], ["output"]))
    graph = helper.make_graph(nodes, "xseg_channel", [_io("input", [1, S, S, 3])], [_io("output", [1, S, S, 1])],
                              initializer=inits)
    return _save(graph, folder / name)


# -- 2. known answers of the pre- and post-processing -------------------------------------------------

def test_preprocess_is_bgr_nhwc_in_unit_range() -> None:
    rgb = np.zeros((S, S, 3), np.float32)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 0.2, 0.5, 1.3   # R, G and an over-range B
    batch = occluder_preprocess(rgb)
    assert batch.shape == (1, S, S, 3) and batch.dtype == np.float32 and batch.flags.c_contiguous
    assert batch[0, 0, 0].tolist() == pytest.approx([1.0, 0.5, 0.2])   # B, G, R; clipped to 1


def test_postprocess_takes_the_nhwc_mask_and_clips() -> None:
    raw = np.linspace(-0.5, 1.5, S * S, dtype=np.float32).reshape(1, S, S, 1)
    out = occluder_postprocess(raw)
    assert out.shape == (S, S) and out.min() == 0.0 and out.max() == 1.0
    assert np.array_equal(out, np.clip(raw[0, ..., 0], 0, 1))
    with pytest.raises(ValueError, match="expected"):
        occluder_postprocess(np.zeros((1, 3, S, S), np.float32))


def _phi(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def test_softening_is_facefusions_blur_and_threshold() -> None:
    """A step from 0 (occluded, left) to 1: blurred by sigma 5 it is Phi(d / 5) at distance d from the
    step, and FaceFusion's ``(clip(., 0.5, 1) - 0.5) * 2`` keeps the occluded side exactly 0."""
    step = np.zeros((S, S), np.float32)
    step[:, S // 2:] = 1.0
    keep = soften_keep(step)
    x = np.arange(S, dtype=np.float64)
    d = x - (S // 2 - 0.5)                      # distance of pixel centres from the step
    expected = (np.clip(_phi(d / BLUR_SIGMA), 0.5, 1.0) - 0.5) * 2.0
    row = keep[S // 2]
    assert np.abs(row - expected).max() < 0.01
    assert (keep[:, : S // 2] == 0.0).all(), "the occluded side is not exactly 0"
    assert (keep[:, S // 2 + 4 * int(BLUR_SIGMA):] == 1.0).all(), "far from the step the face is not exactly 1"
    assert 0.0 < row[S // 2 + 3] < 1.0, "no soft edge"


def test_occluder_file_sees_bgr_and_its_mask_lands_back_on_the_crop(tmp_path: Path) -> None:
    """Through a real ONNX session: the model is fed BGR (its channel 0 is blue), rows stay rows, and the
    mask goes back to the crop through the inverse of the alignment (the template's mouth lands on the
    crop's mouth)."""
    occluder = XsegOccluder(make_xseg_channel(tmp_path, 0), "cpu")
    aligned = np.zeros((S, S, 3), np.float32)
    aligned[: S // 2, :, 2] = 1.0                 # blue in the top half, red everywhere
    aligned[..., 0] = 1.0
    keep = occluder.model_keep(aligned)
    assert (keep[: S // 2 - 4 * int(BLUR_SIGMA)] == 1.0).all() and (keep[S // 2:] == 0.0).all()
    assert np.ptp(keep, axis=1).max() == 0.0, "the mask varies along rows: H and W were swapped"
    occluder_red = XsegOccluder(make_xseg_channel(tmp_path, 2, "xseg_red.onnx"), "cpu")
    assert (occluder_red.model_keep(aligned) == 1.0).all()   # channel 2 of BGR is red: 1 everywhere

    rect = mouth_rectangle()
    boxed = XsegOccluder(make_xseg_rectangle(tmp_path, "xseg_rect.onnx", rect), "cpu")
    # a crop with the face at another scale and angle than the template
    angle, scale, centre = np.deg2rad(12.0), 1.7, np.array([210.0, 190.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    template = TEMPLATES[OCCLUDER_TEMPLATE] * S
    points5 = (template - S / 2) @ rot.T * scale + centre
    crop = np.full((420, 400, 3), 0.5, np.float32)
    occlusion = boxed.occlusion(crop, points5)
    assert occlusion.keep.shape == (420, 400)
    mouth = points5[3:5].mean(0)
    assert occlusion.keep[int(round(mouth[1])), int(round(mouth[0]))] == 0.0
    eyes = points5[0:2].mean(0)
    assert occlusion.keep[int(round(eyes[1])), int(round(eyes[0]))] == 1.0
    # every crop pixel whose model position is inside the rectangle is exactly 0 (by 4 px: the blur rounds its
    # corners), 1 far outside it
    model = _to_model(occlusion.matrix, (420, 400))
    x0, y0, x1, y1 = rect
    inside = (model[..., 0] > x0 + 4) & (model[..., 0] < x1 - 5) & (model[..., 1] > y0 + 4) & (model[..., 1] < y1 - 5)
    far = ((model[..., 0] < x0 - 25) | (model[..., 0] > x1 + 25) | (model[..., 1] < y0 - 25) | (model[..., 1] > y1 + 25))
    assert inside.sum() > 1000 and (occlusion.keep[inside] == 0.0).all()
    assert (occlusion.keep[far] == 1.0).all()
    # and the crop mask is the model mask warped back (bilinear), within interpolation error
    assert np.abs(keep_to_crop(occlusion.model_keep, occlusion.matrix, (420, 400)) - occlusion.keep).max() == 0.0


def _to_model(matrix: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """(h, w, 2) model-pixel position of every crop pixel centre."""
    ys, xs = np.mgrid[0: hw[0], 0: hw[1]].astype(np.float64)
    m = np.asarray(matrix, np.float64)
    return np.stack([m[0, 0] * xs + m[0, 1] * ys + m[0, 2], m[1, 0] * xs + m[1, 1] * ys + m[1, 2]], axis=-1)


# -- 3. combination: the most restrictive mask wins --------------------------------------------------

def test_most_restrictive_mask_wins_with_region_weights_and_a_parser(faces_dir: Path, dlib_models) -> None:
    rgb8 = load_rgb8(faces_dir / "fr_obama.jpg")
    (landmarks,) = face_landmarks(dlib_models, rgb8)
    x0, y0 = (landmarks.min(0) - 40).astype(int)
    x1, y1 = (landmarks.max(0) + 40).astype(int)
    local = (landmarks - [x0, y0]).astype(np.float64)
    shape = (int(y1 - y0), int(x1 - x0))
    size = float(np.ptp(landmarks, axis=0).max())
    weights = {"eyes": 0.0, "mouth": 0.6}
    controls = CompositeControls(regions=tuple(weights.items()), blend=0.8).validated()
    rng = np.random.default_rng(13)
    occlusion = rng.uniform(0.0, 1.0, shape).astype(np.float32)
    occlusion[: shape[0] // 3] = 0.0             # something in front of the top third
    occlusion[-shape[0] // 4:] = 1.0             # nothing in front of the bottom quarter
    ones = np.ones(shape, np.float32)

    plain = region_weight_map(shape, local, size, weights)
    got = controlled_mask(ones, controls, local, size, None, occlusion)
    assert np.allclose(got, 0.8 * np.minimum(plain, occlusion), atol=1e-4)
    assert (got[: shape[0] // 3] == 0.0).all(), "region weights of 1 overrode the occluder"
    eyes = plain == 0.0
    assert eyes.any() and (got[eyes] == 0.0).all(), "an unoccluded pixel overrode a region weight of 0"
    assert (got[-shape[0] // 4:] == np.float32(0.8) * plain[-shape[0] // 4:]).all()
    both = (plain > 0.1) & (plain < 0.9) & (occlusion > 0.1) & (occlusion < 0.9)
    assert both.any() and not np.allclose(got[both], 0.8 * plain[both] * occlusion[both]), "a product, not a minimum"

    # with a parser's masks the parser's outline sets the region weights, the occluder still wins
    parsed_mouth = np.zeros(shape, np.float32)
    mouth_box = (local[48:60].min(0).astype(int), local[48:60].max(0).astype(int))
    parsed_mouth[mouth_box[0][1]: mouth_box[1][1], mouth_box[0][0]: mouth_box[1][0]] = 1.0
    parsed = {"mouth": parsed_mouth}
    refined = refined_region_weight_map(shape, local, size, weights, parsed)
    got = controlled_mask(ones, controls, local, size, parsed, occlusion)
    assert np.allclose(got, 0.8 * np.minimum(refined, occlusion), atol=1e-4)
    inside = parsed_mouth > 0
    assert (refined[inside] == np.float32(0.6)).all()
    low = inside & (occlusion < 0.6)
    assert low.any() and np.allclose(got[low], 0.8 * occlusion[low], atol=1e-4)
    with pytest.raises(ValueError, match="occlusion"):
        controlled_mask(ones, controls, local, size, None, occlusion[1:])
