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

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx_fixtures import make_restorer, save_model
from support import face_landmarks, linear_to_srgb8, load_rgb8, make_plate, read_exr, same_bits

from facebridge.client.grpc_client import FaceBridgeClient, FrameJob, FrameOutcome, SessionInfo
from facebridge.settings import RenderParams
from inference_server.compositing.assembly import controlled_mask
from inference_server.compositing.controls import CompositeControls
from inference_server.compositing.regions import refined_region_weight_map, region_weight_map
from inference_server.models.alignment import TEMPLATES, estimate_alignment, points5_from_68
from inference_server.models.onnx_occluder import (BLUR_SIGMA, OCCLUDER_SIZE, OCCLUDER_TEMPLATE, XsegOccluder,
                                                   keep_to_crop, occluder_postprocess, occluder_preprocess,
                                                   soften_keep)
from inference_server.pipeline.stages import ClassicalSwapStage, RestoreStage
from inference_server.server.app import ServerConfig, start_server

S = OCCLUDER_SIZE


# -- synthetic xseg files ---------------------------------------------------------------------------

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
    return (int(corners[0, 0] - 0.05 * S), int(y - 0.07 * S), math.ceil(corners[1, 0] + 0.05 * S),
            math.ceil(y + 0.09 * S))


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
    return save_model(graph, folder / name)


def make_xseg_channel(folder: Path, channel: int, name: str = "xseg_channel.onnx") -> Path:
    """xseg-format file whose output is channel ``channel`` of its (BGR) input."""
    nodes, inits = _channel_nodes(channel)
    nodes.append(helper.make_node("Identity", ["picked"], ["output"]))
    graph = helper.make_graph(nodes, "xseg_channel", [_io("input", [1, S, S, 3])], [_io("output", [1, S, S, 1])],
                              initializer=inits)
    return save_model(graph, folder / name)


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
    assert occlusion.keep[round(mouth[1]), round(mouth[0])] == 0.0
    eyes = points5[0:2].mean(0)
    assert occlusion.keep[round(eyes[1]), round(eyes[0])] == 1.0
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


# -- 1. through the server: the occluded plate stays bit-exact -----------------------------------------

EYE_RECTANGLE = (60, 80, 130, 125)        # xseg_2's occluded rectangle: over the left eye
OTHER_EYE_RECTANGLE = (130, 80, 200, 125)  # xseg_3's: over the right eye


@pytest.fixture(scope="module")
def plate(faces_dir: Path, dlib_models, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    return make_plate(faces_dir / "fr_obama.jpg", tmp_path_factory.mktemp("plate") / "plate.exr", dlib_models)


@pytest.fixture(scope="module")
def occluder_server(dlib_models, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server whose models folder holds xseg-format files (xseg_1: the mouth rectangle, xseg_2 and xseg_3:
    an eye rectangle each) and a constant GPEN stand-in (an aligned stage)."""
    folder = tmp_path_factory.mktemp("models")
    make_xseg_rectangle(folder, "xseg_1.onnx", mouth_rectangle())
    make_xseg_rectangle(folder, "xseg_2.onnx", EYE_RECTANGLE)
    make_xseg_rectangle(folder, "xseg_3.onnx", OTHER_EYE_RECTANGLE)
    make_restorer(folder, 512, constant=0.75, name="gpen_bfr_512.onnx")
    running = start_server(ServerConfig(port=0, device="cpu", cache_dir=tmp_path_factory.mktemp("cache"),
                                        models_dir=folder, allow_roots=(tmp_path_factory.getbasetemp(),),
                                        allow_unverified=True), models=dlib_models)
    yield f"127.0.0.1:{running.port}"
    running.stop(grace=2.0)


def _render(address: str, plate: Path, out: Path, params: RenderParams, sources: list[str]
            ) -> tuple[SessionInfo, FrameOutcome, np.ndarray]:
    with FaceBridgeClient(address, timeout=300.0) as client:
        session = client.open_session(sources, shot=f"t-{out.stem}", params=params)
        (outcome,) = client.process(session.session_id, [FrameJob(1, str(plate), str(out))], use_paths=True)
    assert outcome.status == "ok", outcome.message
    pixels, _ = read_exr(out)
    return session, outcome, pixels


def _model_positions(before: np.ndarray, dlib_models) -> tuple[np.ndarray, np.ndarray]:
    """The plate's face landmarks and the (h, w, 2) position of every plate pixel in the occluder's square."""
    proxy = linear_to_srgb8(np.nan_to_num(before[..., :3], nan=0.0, posinf=1.0))
    (landmarks,) = face_landmarks(dlib_models, proxy)
    matrix = estimate_alignment(points5_from_68(landmarks), OCCLUDER_TEMPLATE, S)
    return landmarks, _to_model(matrix, before.shape[:2])


def _within(model: np.ndarray, rect: tuple[int, int, int, int], margin: float) -> np.ndarray:
    x0, y0, x1, y1 = rect
    return ((model[..., 0] > x0 - 0.5 + margin) & (model[..., 0] < x1 - 0.5 - margin)
            & (model[..., 1] > y0 - 0.5 + margin) & (model[..., 1] < y1 - 0.5 - margin))


@pytest.mark.parametrize("mode", ["swap", "restore"])
def test_an_occluded_mouth_keeps_the_plate_bit_exact(occluder_server: str, plate: tuple[Path, np.ndarray],
                                                     faces_dir: Path, dlib_models, tmp_path: Path, mode: str) -> None:
    """xseg_1 marks a rectangle over the mouth of its square: those plate pixels come back bit-exact (every
    channel) while the rest of the face changes exactly as without the occluder. ``swap``: the classical swap;
    ``restore``: an aligned stage (a constant GPEN stand-in)."""
    path, zone = plate
    before, _ = read_exr(path)
    if mode == "swap":
        base = RenderParams(allow_unverified=True, stabilise=0.0)
        sources = [str(faces_dir / "fr_alex_lacamoire.png")]
    else:
        base = RenderParams(mode="restore", restorer="gpen_bfr_512", allow_unverified=True, stabilise=0.0,
                            colour_match="none")
        sources = []
    renders = {}
    for occluder in ("none", "xseg_1"):
        session, _, renders[occluder] = _render(occluder_server, path, tmp_path / f"{mode}-{occluder}.exr",
                                                RenderParams(**{**base.as_dict(), "occluder": occluder}), sources)
        assert any(m.startswith("xseg_1@") for m in session.model_ids) == (occluder == "xseg_1"), session.model_ids
    _, model = _model_positions(before, dlib_models)
    rect = mouth_rectangle()
    # 6 model px inside the rectangle: the blur's rounded corners, bilinear warps and the landmarks' own noise
    mouth = _within(model, rect, 6.0)
    assert mouth.sum() > 500, mouth.sum()
    plain, occluded = renders["none"], renders["xseg_1"]
    changed_plain = ~same_bits(before, plain).all(axis=2)
    assert isinstance(changed_plain, np.ndarray)  # per pixel (numpy's stubs allow a scalar for axis=2)
    # (the classical swap keeps the target's open mouth interior itself, about a fifth of the rectangle here)
    assert changed_plain[mouth].mean() > 0.6, "without an occluder the mouth should change (else this test proves nothing)"
    assert same_bits(before[mouth], occluded[mouth]).all(), (
        f"{int((~same_bits(before[mouth], occluded[mouth]).all(axis=1)).sum())} occluded plate pixels changed")
    # the rest of the face: far from the rectangle (beyond the blur and warps) exactly the unoccluded render
    far = zone & ~_within(model, rect, -30.0)
    assert (changed_plain & far).sum() > 5 * mouth.sum()
    assert same_bits(plain[far], occluded[far]).all(), "the occluder changed pixels far from what it marks"
    assert same_bits(before[~zone], occluded[~zone]).all()


# -- 4. the cache: the occluder is part of the key -----------------------------------------------------

def test_the_occluder_is_part_of_the_model_output_key(occluder_server: str, plate: tuple[Path, np.ndarray],
                                                      faces_dir: Path, tmp_path: Path) -> None:
    path, _ = plate
    base = RenderParams(allow_unverified=True, stabilise=0.0).as_dict()
    sources = [str(faces_dir / "fr_alex_lacamoire.png")]
    _, first, eye_1 = _render(occluder_server, path, tmp_path / "eye1.exr", RenderParams(**{**base, "occluder": "xseg_2"}),
                              sources)
    _, again, eye_2 = _render(occluder_server, path, tmp_path / "eye2.exr", RenderParams(**{**base, "occluder": "xseg_2"}),
                              sources)
    assert [f["cache"] for f in first.faces] == ["miss"], first.faces
    assert [f["cache"] for f in again.faces] == ["hit"], again.faces     # same occluder: the cached output
    assert same_bits(eye_1, eye_2).all()
    # another occluder (only this test uses xseg_3): another key, and a compositing control alone is no new key
    _, other, right = _render(occluder_server, path, tmp_path / "right.exr",
                              RenderParams(**{**base, "occluder": "xseg_3"}), sources)
    assert [f["cache"] for f in other.faces] == ["miss"], other.faces
    assert not same_bits(eye_1, right).all()
    _, blended, _ = _render(occluder_server, path, tmp_path / "blend.exr",
                            RenderParams(**{**base, "occluder": "xseg_3", "blend": 0.9}), sources)
    assert [f["cache"] for f in blended.faces] == ["hit"], blended.faces


def test_stage_ids_name_the_occluder_only_when_there_is_one() -> None:
    class Fixed:
        def __init__(self, ident: str) -> None:
            self.model_id = ident

        def keep(self, crop_model: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
            return np.ones(crop_model.shape[:2], np.float32)

    from inference_server.swap import ALGORITHM_ID, SwapParams

    plain = ClassicalSwapStage(SwapParams(), ALGORITHM_ID)
    one = ClassicalSwapStage(SwapParams(), ALGORITHM_ID, occluder=Fixed("xseg_1@aaaa"))
    other = ClassicalSwapStage(SwapParams(), ALGORITHM_ID, occluder=Fixed("xseg_1@bbbb"))
    assert plain.model_ids == (ALGORITHM_ID,)
    assert one.model_ids == (ALGORITHM_ID, "xseg_1@aaaa") and other.model_ids != one.model_ids
    restore = RestoreStage(restorer=Fixed("gpen"), occluder=Fixed("xseg_3@cccc"))  # type: ignore[arg-type]  # ids only: a stand-in restorer
    assert restore.model_ids == ("gpen", "xseg_3@cccc")


# -- the panel's region overlay shows the occluded area ------------------------------------------------

def test_the_preview_overlay_labels_the_occluded_area(occluder_server: str, plate: tuple[Path, np.ndarray],
                                                      faces_dir: Path) -> None:
    path, _ = plate
    sources = [str(faces_dir / "fr_alex_lacamoire.png")]
    overlays = {}
    with FaceBridgeClient(occluder_server, timeout=300.0) as client:
        for occluder in ("none", "xseg_1"):
            params = RenderParams(allow_unverified=True, stabilise=0.0, occluder=occluder)
            session = client.open_session(sources, shot=f"preview-{occluder}", params=params)
            overlays[occluder] = client.preview(session.session_id, 1, input_path=str(path), max_side=400,
                                                include_regions=True)
    plain, occluded = overlays["none"], overlays["xseg_1"]
    assert occluded.region_names[-1] == "occluded" and occluded.region_names[3] == "mouth"
    assert plain.labels is not None and occluded.labels is not None
    (face,) = occluded.faces
    landmarks = face["landmarks"]
    x0, y0, x1, y1 = occluded.box
    h, w = occluded.labels.shape

    def label_at(labels: np.ndarray, point: np.ndarray) -> int:
        u = round((point[0] - x0 + 0.5) * w / (x1 - x0) - 0.5)
        v = round((point[1] - y0 + 0.5) * h / (y1 - y0) - 0.5)
        return int(labels[v, u])

    mouth, nose_top = landmarks[48:68].mean(axis=0), landmarks[27]
    occluded_label = 1 + occluded.region_names.index("occluded")
    assert label_at(occluded.labels, mouth) == occluded_label
    assert label_at(plain.labels, mouth) == 1 + plain.region_names.index("mouth")
    assert label_at(occluded.labels, nose_top) == label_at(plain.labels, nose_top) != occluded_label
    # only the occluded area changes label, and only inside the faces' outline
    differs = plain.labels != occluded.labels
    assert differs.any() and (occluded.labels[differs] == occluded_label).all() and (plain.labels[differs] > 0).all()
    assert not (plain.labels == occluded_label).any()
