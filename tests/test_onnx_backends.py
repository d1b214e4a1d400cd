"""Known-answer tests of the FaceFusion-format ONNX backends, run on small synthetic ONNX models.

The synthetic models (tests/onnx_fixtures.py) carry the real files' input names and shapes and compute
known functions, so every check below compares against a value worked out independently.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx_fixtures as fx
import onnxruntime as ort
import pytest

from inference_server.models import alignment as al
from inference_server.models import onnx_session
from inference_server.models.errors import ModelInvalid, ModelNotFound
from inference_server.models.aligned_result import AlignedResult, run_aligned
from inference_server.models.onnx_embedder import ArcfaceEmbedder, arcface_preprocess
from inference_server.models.onnx_parser import BISENET_LABELS, BisenetParser, parser_preprocess, parser_region_masks
from inference_server.models.onnx_restorer import OnnxRestorer, restore_aligned, restorer_postprocess, restorer_preprocess
from inference_server.models.onnx_session import (ExecutionProviderError, OnnxModelError, check_io, open_session,
                                                  providers_for)
from inference_server.models.onnx_swapper import InswapperSwapper, prepare_inswapper_source, read_emap

CPU = "CPUExecutionProvider"


# -- shared inputs ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-models")


@pytest.fixture(scope="module")
def real_face(faces_dir: Path, request: pytest.FixtureRequest) -> tuple[np.ndarray, np.ndarray]:
    """A real face crop (float32 sRGB [0, 1], as the server cuts it) and its five points in crop px."""
    from support import crop_target, face_photo

    from inference_server.faces.errors import ModelFilesMissingError

    try:
        models = request.getfixturevalue("dlib_models")
    except ModelFilesMissingError as error:
        pytest.skip(f"dlib landmark models not installed: {error}")
    rgb8 = face_photo("fr_obama.jpg")
    detections = models.detect(rgb8)
    assert detections, "no face found in fr_obama.jpg"
    crop, landmarks, _ = crop_target(rgb8, detections[0].landmarks)
    return np.ascontiguousarray(crop), al.points5_from_68(landmarks)


def _synthetic_face(template: str, size: int, crop_hw: tuple[int, int] = (300, 280), face_px: float = 180.0,
                    angle: float = 0.2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Crop-space points that are an exact similarity of ``template``; returns (points5, M, crop)."""
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) * (face_px / size)
    centre = np.array([crop_hw[1] / 2.0, crop_hw[0] / 2.0])
    points = (al.template_points(template, size) - size / 2.0) @ rotation.T + centre
    rng = np.random.default_rng(7)
    crop = cv2.GaussianBlur(rng.uniform(0.0, 1.0, (*crop_hw, 3)).astype(np.float32), (0, 0), 3.0)
    return points, al.estimate_alignment(points, template, size), crop


def _ramp(hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:hw[0], 0:hw[1]].astype(np.float64)
    return np.repeat(_ramp_value(xs, ys)[..., None], 3, axis=2).astype(np.float32), xs, ys


def _ramp_value(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return 0.2 + 0.0008 * x + 0.0005 * y


# -- alignment ------------------------------------------------------------------------------------------

def test_templates_are_read_only_5x2() -> None:
    assert set(al.TEMPLATES) == {"arcface_112_v1", "arcface_112_v2", "arcface_128", "ffhq_512", "mtcnn_512"}
    for points in al.TEMPLATES.values():
        assert points.shape == (5, 2) and points.dtype == np.float64
        assert points[0, 0] < points[1, 0] and points[3, 0] < points[4, 0]  # image-left first
        with pytest.raises(ValueError):
            points[0, 0] = 0.0
    # arcface_112_v2 at 112 px is insightface's arcface_src
    np.testing.assert_allclose(al.TEMPLATES["arcface_112_v2"][0] * 112, (38.2946, 51.6963), atol=1e-4)


def test_points5_from_68_uses_ibug_indices() -> None:
    landmarks = np.stack([np.arange(68.0), 1000.0 + np.arange(68.0)], axis=1)
    points = al.points5_from_68(landmarks)
    expected_x = [np.mean(range(36, 42)), np.mean(range(42, 48)), 30.0, 48.0, 54.0]
    np.testing.assert_array_equal(points[:, 0], expected_x)
    np.testing.assert_array_equal(points[:, 1], np.array(expected_x) + 1000.0)
    with pytest.raises(ValueError):
        al.points5_from_68(landmarks[:5])


@pytest.mark.parametrize("template,size", [("arcface_128", 128), ("arcface_112_v2", 112), ("ffhq_512", 512),
                                           ("arcface_112_v1", 112)])
def test_alignment_maps_points_onto_template(template: str, size: int) -> None:
    angle, scale, shift = 0.4, 0.37, np.array([-61.0, 23.5])
    model_from_crop = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) * scale
    target = al.template_points(template, size)
    points = (target - shift) @ np.linalg.inv(model_from_crop).T
    matrix = al.estimate_alignment(points, template, size)
    assert matrix.shape == (2, 3) and matrix.dtype == np.float64
    mapped = points @ matrix[:, :2].T + matrix[:, 2]
    assert np.abs(mapped - target).max() < 1e-6
    np.testing.assert_allclose(matrix[:, :2], model_from_crop, atol=1e-12)


@pytest.mark.parametrize("noise", [0.0, 1.5])
def test_alignment_matches_opencv_partial_affine(noise: float) -> None:
    """Closed form == cv2.estimateAffinePartial2D(RANSAC, 100) (FaceFusion's call) on clean points."""
    cv2.setRNGSeed(0)
    rng = np.random.default_rng(1)
    worst = 0.0
    for _ in range(20):
        angle, scale = rng.uniform(-0.6, 0.6), rng.uniform(0.1, 3.0)
        linear = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) * scale
        target = al.template_points("arcface_128", 128)
        points = (target - rng.uniform(-200, 200, 2)) @ np.linalg.inv(linear).T + rng.normal(0, noise, (5, 2))
        ours = al.estimate_alignment(points, "arcface_128", 128)
        theirs, inliers = cv2.estimateAffinePartial2D(points, target, method=cv2.RANSAC, ransacReprojThreshold=100)
        assert inliers.all()
        homogeneous = np.c_[points, np.ones(5)]
        worst = max(worst, float(np.abs(homogeneous @ ours.T - homogeneous @ theirs.T).max()))
    assert worst < 2e-4  # model px; OpenCV's iterative refinement stops at ~1e-5


def test_alignment_rejects_degenerate_points() -> None:
    with pytest.raises(ValueError):
        al.estimate_alignment(np.ones((5, 2)), "arcface_128", 128)
    with pytest.raises(ValueError):
        al.estimate_alignment(np.zeros((4, 2)), "arcface_128", 128)
    with pytest.raises(ValueError):
        al.estimate_alignment(np.arange(10.0).reshape(5, 2), "no_such_template", 128)


@pytest.mark.parametrize("template,size", [("arcface_128", 128), ("ffhq_512", 512), ("ffhq_512", 1024)])
def test_warps_are_exact_on_a_linear_ramp(template: str, size: int) -> None:
    """A linear image must come out as the same linear function at the mapped positions, both ways.

    Covers the down-scaling path (crop to 128 px, area pre-reduction with its matrix correction; an
    off-by-half-pixel correction gives errors near 1e-3) and the up-scaling paths.
    """
    hw = (542, 542)
    ramp, xs, ys = _ramp(hw)
    _, matrix, _ = _synthetic_face(template, size, hw, face_px=300.0, angle=0.3)
    model = al.warp_to_model(ramp, matrix, size)
    assert model.shape == (size, size, 3) and model.dtype == np.float32
    inverse = al.invert_matrix(matrix)
    v, u = np.mgrid[0:size, 0:size].astype(np.float64)
    x = inverse[0, 0] * u + inverse[0, 1] * v + inverse[0, 2]
    y = inverse[1, 0] * u + inverse[1, 1] * v + inverse[1, 2]
    inside = (x > 2) & (x < hw[1] - 3) & (y > 2) & (y < hw[0] - 3)
    assert np.abs(model[..., 0] - _ramp_value(x, y))[inside].max() < 2e-4
    back = al.warp_to_crop(model, matrix, hw)
    coverage = al.coverage_mask(matrix, size, hw)
    assert back.shape == (*hw, 3) and back.dtype == np.float32
    assert np.abs(back[..., 0] - _ramp_value(xs, ys))[coverage == 1].max() < 2e-4


def test_coverage_mask_is_one_inside_soft_edge_zero_outside() -> None:
    _, matrix, _ = _synthetic_face("arcface_128", 128, (300, 280), face_px=120.0)
    coverage = al.coverage_mask(matrix, 128, (300, 280), feather=0.1)
    assert coverage.shape == (300, 280) and coverage.dtype == np.float32
    ys, xs = np.mgrid[0:300, 0:280].astype(np.float64)
    u = matrix[0, 0] * xs + matrix[0, 1] * ys + matrix[0, 2]
    v = matrix[1, 0] * xs + matrix[1, 1] * ys + matrix[1, 2]
    distance = np.minimum(np.minimum(u + 0.5, 127.5 - u), np.minimum(v + 0.5, 127.5 - v))
    assert (coverage[distance <= 0] == 0.0).all()
    assert (coverage[distance >= 12.8] == 1.0).all()
    ramp = (distance > 0) & (distance < 12.8)
    assert ramp.any() and ((coverage[ramp] > 0) & (coverage[ramp] < 1)).all()
    # no seam: neighbouring pixels differ by less than a hard edge would
    assert max(np.abs(np.diff(coverage, axis=0)).max(), np.abs(np.diff(coverage, axis=1)).max()) < 0.25
    hard = al.coverage_mask(matrix, 128, (300, 280), feather=0.0)
    assert set(np.unique(hard)) <= {0.0, 1.0}


def test_round_trip_returns_the_real_crop(real_face: tuple[np.ndarray, np.ndarray]) -> None:
    """Crop -> 128 px model square -> crop gives the crop back where coverage is 1, up to resampling.

    The crop is low-passed to the model's resolution first (sigma 2 model px), since detail finer than
    the 128 px square cannot survive any round trip.
    """
    crop, points = real_face
    matrix = al.estimate_alignment(points, "arcface_128", 128)
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    smooth = cv2.GaussianBlur(crop, (0, 0), 2.0 / scale)
    back = al.warp_to_crop(al.warp_to_model(smooth, matrix, 128), matrix, crop.shape[:2])
    inside = al.coverage_mask(matrix, 128, crop.shape[:2]) == 1.0
    assert inside.mean() > 0.2
    error = np.abs(back - smooth)[inside]
    assert error.mean() < 3e-3 and np.percentile(error, 99) < 0.02


# -- inswapper --------------------------------------------------------------------------------------------

def test_source_preparation_known_answers() -> None:
    raw = np.random.default_rng(3).normal(0.0, 1.0, 512)
    identity = prepare_inswapper_source(raw, np.eye(512))
    assert identity.shape == (1, 512) and identity.dtype == np.float32
    np.testing.assert_allclose(identity[0], raw / np.linalg.norm(raw), rtol=1e-6, atol=1e-7)
    emap = fx.inswapper_emap()
    source = prepare_inswapper_source(raw, emap)
    np.testing.assert_allclose(source[0], raw @ emap.astype(np.float64) / np.linalg.norm(raw), rtol=1e-5, atol=1e-6)
    # the insightface variant differs only in length
    insightface = (raw / np.linalg.norm(raw)) @ emap.astype(np.float64)
    insightface /= np.linalg.norm(insightface)
    np.testing.assert_allclose(source[0] / np.linalg.norm(source[0]), insightface, atol=1e-6)
    with pytest.raises(ValueError):
        prepare_inswapper_source(np.zeros(512), emap)
    with pytest.raises(ValueError):
        prepare_inswapper_source(raw[:100], emap)


def test_read_emap_takes_the_last_initializer(models_dir: Path) -> None:
    path = fx.make_inswapper(models_dir)
    emap = read_emap(path)
    assert emap.shape == (512, 512) and emap.dtype == np.float32
    np.testing.assert_array_equal(emap, fx.inswapper_emap())
    with pytest.raises(OnnxModelError, match="last initializer"):
        read_emap(fx.make_arcface(models_dir))


def _swap(swapper: InswapperSwapper, crop: np.ndarray, points: np.ndarray, raw: np.ndarray) -> AlignedResult:
    """The swapper's face aligned on its template, run with ``raw``'s source vector and pasted back."""
    source = prepare_inswapper_source(raw, swapper.emap)
    return run_aligned(crop, points, swapper.template, swapper.size, lambda aligned: swapper.run(aligned, source))


def test_pass_through_swapper_returns_the_crop(models_dir: Path, real_face: tuple[np.ndarray, np.ndarray]) -> None:
    crop, points = real_face
    swapper = InswapperSwapper(fx.make_inswapper(models_dir), "cpu")
    result = _swap(swapper, crop, points, np.random.default_rng(5).normal(0.0, 1.0, 512))
    assert isinstance(result, AlignedResult)
    assert result.image.shape == crop.shape and result.image.dtype == np.float32
    assert result.coverage.shape == crop.shape[:2] and result.matrix.shape == (2, 3)
    np.testing.assert_allclose(result.matrix, al.estimate_alignment(points, "arcface_128", 128))
    covered = result.coverage > 0
    # exactly the alignment round trip (the model adds nothing) ...
    reference = al.warp_to_crop(al.warp_to_model(crop, result.matrix, 128), result.matrix, crop.shape[:2])
    assert np.abs(result.image - reference)[covered].max() < 1e-3
    # ... the crop untouched outside the model square ...
    assert np.array_equal(result.image[~covered], crop[~covered])
    # ... and, on a crop low-passed to the model resolution, the crop itself where coverage is 1
    scale = float(np.sqrt(abs(np.linalg.det(result.matrix[:, :2]))))
    smooth = cv2.GaussianBlur(crop, (0, 0), 2.0 / scale)
    smooth_result = _swap(swapper, smooth, points, np.ones(512))
    error = np.abs(smooth_result.image - smooth)[smooth_result.coverage == 1.0]
    assert error.mean() < 3e-3


# -- arcface -----------------------------------------------------------------------------------------------

def test_arcface_preprocess_known_answer() -> None:
    aligned = np.zeros((112, 112, 3), np.float32)
    aligned[..., 0], aligned[..., 1], aligned[..., 2] = 0.0, 0.5, 1.0
    aligned[3, 7] = (0.25, 0.75, 127.5 / 255.0)
    batch = arcface_preprocess(aligned)
    assert batch.shape == (1, 3, 112, 112) and batch.dtype == np.float32 and batch.flags.c_contiguous
    assert (batch[0, 0] == -1.0).sum() == 112 * 112 - 1 and (batch[0, 2] == 1.0).sum() == 112 * 112 - 1
    np.testing.assert_allclose(batch[0, :, 3, 7], (-0.5, 0.5, 0.0), atol=1e-7)  # 8-bit x / 127.5 - 1
    assert (batch[0, 1][np.arange(112) != 3] == 0.0).all()


def test_arcface_embedder_known_answer(models_dir: Path) -> None:
    points, matrix, crop = _synthetic_face("arcface_112_v2", 112)
    embedder = ArcfaceEmbedder(fx.make_arcface(models_dir), "cpu")
    embedding = embedder.embed(crop, points)
    assert embedding.shape == (512,) and embedding.dtype == np.float32
    expected = fx.arcface_reference(arcface_preprocess(al.warp_to_model(crop, matrix, 112)))
    np.testing.assert_allclose(embedding, expected, rtol=1e-4, atol=1e-4)


# -- restorers -----------------------------------------------------------------------------------------------

def test_restorer_pre_and_post_processing() -> None:
    aligned = np.full((4, 4, 3), 0.25, np.float32)
    aligned[0, 0] = (0.0, 0.5, 1.0)
    batch = restorer_preprocess(aligned)
    assert batch.shape == (1, 3, 4, 4) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch[0, :, 0, 0], (-1.0, 0.0, 1.0))
    assert batch[0, 0, 1, 1] == -0.5
    np.testing.assert_array_equal(restorer_postprocess(batch), aligned)
    clipped = restorer_postprocess(np.array([-3.0, 0.5, 7.0], np.float32).reshape(1, 3, 1, 1))
    np.testing.assert_array_equal(clipped[0, 0], (0.0, 0.75, 1.0))


@pytest.mark.parametrize("size,template", [(256, "arcface_128"), (512, "ffhq_512")])
def test_constant_restorer_pastes_the_colour(models_dir: Path, size: int, template: str) -> None:
    points, matrix, crop = _synthetic_face(template, size)
    restorer = OnnxRestorer(fx.make_restorer(models_dir, size, constant=0.5), "cpu", size=size)
    assert restorer.template == template
    result = restorer.restore(crop, points)
    np.testing.assert_allclose(result.matrix, matrix)
    full = result.coverage == 1.0
    assert full.mean() > 0.2
    assert np.abs(result.image[full] - 0.75).max() < 1e-6  # (0.5 + 1) / 2
    c = result.coverage[..., None]  # crop * (1 - coverage) + image * coverage
    composite = (crop * (1.0 - c) + result.image * c).astype(np.float32)
    assert np.abs(composite[full] - 0.75).max() < 1e-6
    none = result.coverage == 0.0
    assert none.any() and np.array_equal(composite[none], crop[none])
    edge = ~full & ~none
    low, high = np.minimum(crop, 0.75), np.maximum(crop, 0.75)
    assert ((composite[edge] >= low[edge] - 1e-6) & (composite[edge] <= high[edge] + 1e-6)).all()


def test_restore_aligned_with_a_python_callable_equals_the_onnx_path(models_dir: Path) -> None:
    """A PyTorch runner (NCHW [-1, 1] -> NCHW) gets the same alignment and paste-back as ONNX."""
    points, _, crop = _synthetic_face("ffhq_512", 512)
    onnx_result = OnnxRestorer(fx.make_restorer(models_dir, 512), "cpu", size=512).restore(crop, points)
    seen: list[np.ndarray] = []

    def identity(batch: np.ndarray) -> np.ndarray:
        seen.append(batch)
        return batch

    python_result = restore_aligned(crop, points, "ffhq_512", 512, identity)
    assert seen[0].shape == (1, 3, 512, 512) and seen[0].dtype == np.float32
    assert seen[0].min() >= -1.0 and seen[0].max() <= 1.0
    np.testing.assert_array_equal(python_result.image, onnx_result.image)
    np.testing.assert_array_equal(python_result.coverage, onnx_result.coverage)


# -- parser ------------------------------------------------------------------------------------------------------

def test_bisenet_labels_order() -> None:
    assert len(BISENET_LABELS) == 19
    assert BISENET_LABELS.index("skin") == 1 and BISENET_LABELS.index("nose") == 10
    assert BISENET_LABELS.index("u_lip") == 12 and BISENET_LABELS[-1] == "hat"


def test_parser_preprocess_imagenet_known_answer() -> None:
    aligned = np.broadcast_to(np.array([0.485, 0.456, 0.406], np.float32), (512, 512, 3)).copy()
    aligned[0, 0] = (0.485 + 0.229, 0.456 - 0.224, 0.406 + 2 * 0.225)
    batch = parser_preprocess(aligned)
    assert batch.shape == (1, 3, 512, 512) and batch.dtype == np.float32
    np.testing.assert_allclose(batch[0, :, 0, 0], (1.0, -1.0, 2.0), atol=1e-5)
    assert np.abs(batch[0, :, 1:, 1:]).max() < 1e-6


def test_parser_labels_land_at_known_positions(models_dir: Path) -> None:
    points, matrix, crop = _synthetic_face("ffhq_512", 512, (400, 380), face_px=300.0, angle=-0.25)
    parsed = BisenetParser(fx.make_bisenet(models_dir), "cpu").parse(crop, points)
    assert parsed.labels.shape == (400, 380) and parsed.labels.dtype == np.uint8
    ys, xs = np.mgrid[0:400, 0:380].astype(np.float64)
    u = matrix[0, 0] * xs + matrix[0, 1] * ys + matrix[0, 2]
    v = matrix[1, 0] * xs + matrix[1, 1] * ys + matrix[1, 2]
    inside = (u > 1.5) & (u < 509.5) & (v > 1.5) & (v < 509.5)
    block = fx.BISENET_BLOCK
    clear = inside & (np.abs(u - block * np.round(u / block)) > 1.5) & (np.abs(v - block * np.round(v / block)) > 1.5)
    expected = fx.BISENET_BLOCK_LABELS[np.clip(v // block, 0, 3).astype(int), np.clip(u // block, 0, 3).astype(int)]
    assert clear.sum() > 10000
    np.testing.assert_array_equal(parsed.labels[clear], expected[clear])
    assert (parsed.labels[parsed.coverage == 0] == 0).all()
    assert set(np.unique(parsed.labels[clear])) >= {1, 2, 3, 4, 5, 10, 11, 12, 13}


def test_parser_region_masks() -> None:
    labels = np.array([[0, 1, 2, 3], [4, 5, 6, 10], [11, 12, 13, 17]], np.uint8)
    masks = parser_region_masks(labels, (3, 4))
    assert set(masks) == {"eyes", "brows", "nose", "mouth", "skin", "glasses"}
    for mask in masks.values():
        assert mask.shape == (3, 4) and mask.dtype == np.float32
    np.testing.assert_array_equal(masks["eyes"], [[0, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(masks["brows"], [[0, 0, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(masks["nose"], [[0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]])
    np.testing.assert_array_equal(masks["mouth"], [[0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 0]])
    np.testing.assert_array_equal(masks["skin"], [[0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(masks["glasses"], [[0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]])  # label 6
    resized = parser_region_masks(np.kron(labels, np.ones((2, 2), np.uint8)), (3, 4))
    np.testing.assert_array_equal(resized["mouth"], masks["mouth"])


# -- sessions and errors -----------------------------------------------------------------------------------------

def _assert_one_line_naming(error: pytest.ExceptionInfo[BaseException], path: Path) -> None:
    message = str(error.value)
    assert "\n" not in message and str(path) in message


def test_bad_files_give_one_line_errors_naming_the_file(models_dir: Path) -> None:
    garbage = fx.write_garbage(models_dir)
    with pytest.raises(OnnxModelError) as error:
        open_session(garbage, "cpu")
    _assert_one_line_naming(error, garbage)
    with pytest.raises(OnnxModelError) as error:
        InswapperSwapper(garbage, "cpu")
    _assert_one_line_naming(error, garbage)
    missing = models_dir / "missing.onnx"
    with pytest.raises(OnnxModelError, match="not found") as error:
        OnnxRestorer(missing, "cpu", size=512)
    _assert_one_line_naming(error, missing)
    assert isinstance(error.value, ModelNotFound) and isinstance(error.value, ModelInvalid)


def test_wrong_inputs_give_one_line_errors_naming_the_file(models_dir: Path) -> None:
    renamed = fx.make_restorer(models_dir, 256, input_name="x", name="renamed_input.onnx")
    with pytest.raises(OnnxModelError, match="expected \\(input") as error:
        OnnxRestorer(renamed, "cpu", size=256)
    _assert_one_line_naming(error, renamed)
    small = fx.make_restorer(models_dir, 256)
    with pytest.raises(OnnxModelError, match="shape") as error:
        OnnxRestorer(small, "cpu", size=512)
    _assert_one_line_naming(error, small)
    arcface = fx.make_arcface(models_dir)
    with pytest.raises(OnnxModelError) as error:
        InswapperSwapper(arcface, "cpu")
    _assert_one_line_naming(error, arcface)
    session = open_session(arcface, "cpu")
    check_io(session, {"input": (None, 3, 112, None)}, arcface)  # free dimensions accept any size


def test_providers_for_cpu_auto_and_cuda() -> None:
    assert providers_for("cpu") == [CPU]
    assert providers_for(" CPU ") == [CPU]
    available = ort.get_available_providers()
    if "CUDAExecutionProvider" in available:
        assert ("CUDAExecutionProvider" in [p if isinstance(p, str) else p[0] for p in providers_for("cuda")])
    else:
        assert providers_for("auto") == [CPU]
        with pytest.raises(ExecutionProviderError, match="no CUDA provider"):
            providers_for("cuda")
        with pytest.raises(ExecutionProviderError):
            providers_for("cuda:1")
    with pytest.raises(ExecutionProviderError, match="unknown device"):
        providers_for("tpu")
    with pytest.raises(ExecutionProviderError):
        providers_for("cuda:x")


def test_providers_for_gpu_builds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(onnx_session.ort, "get_available_providers",
                        lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", CPU])
    providers = providers_for("cuda:1")
    assert [p if isinstance(p, str) else p[0] for p in providers] == [
        "TensorrtExecutionProvider", "CUDAExecutionProvider", CPU]
    trt, cuda = providers[0], providers[1]
    assert isinstance(trt, tuple) and isinstance(cuda, tuple)  # (name, options)
    assert trt[1]["device_id"] == 1 and cuda[1]["device_id"] == 1
    assert [p if isinstance(p, str) else p[0] for p in providers_for("auto", use_tensorrt=False)] == [
        "CUDAExecutionProvider", CPU]
    assert providers_for("mps") == [CPU]
    monkeypatch.setattr(onnx_session.ort, "get_available_providers", lambda: ["CoreMLExecutionProvider", CPU])
    assert providers_for("mps") == ["CoreMLExecutionProvider", CPU]
    assert providers_for("auto") == ["CoreMLExecutionProvider", CPU]


def test_sessions_are_deterministic(models_dir: Path) -> None:
    path = fx.make_arcface(models_dir)
    batch = np.random.default_rng(9).uniform(-1, 1, (1, 3, 112, 112)).astype(np.float32)
    first = onnx_session.run_session(open_session(path, "cpu"), {"input": batch})[0]
    second = onnx_session.run_session(open_session(path, "cpu"), {"input": batch})[0]
    np.testing.assert_array_equal(first, second)
