"""Issue 16 item 2: neural face detectors and 68-point landmarkers from the models folder (FaceFusion formats).

The ONNX files are small synthetic models built here with the real files' input name and shape and their
output layouts (tests/onnx_fixtures.py); their constant outputs encode known faces, so every decoded box, point
and score has a known answer: anchors and strides, letterbox scale back to frame pixels, the score thresholds
and non-maximum suppression. End to end, a real server analyses and swaps a real face with a synthetic
detector and landmarker whose outputs put the face where it is.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from onnx_fixtures import make_2dfan4, make_anchor_detector, make_peppa_wutz, make_yolo_detector
from support import load_rgb8, read_exr, srgb8_to_linear, write_exr

from inference_server.faces.dlib_models import DlibFaceModels
from inference_server.models.alignment import estimate_alignment, points5_from_68, template_points
from inference_server.models.errors import ModelRefused
from inference_server.models.face_finder import ModelFaceFinder
from inference_server.models.onnx_detector import (NMS_IOU, SCORE_THRESHOLD, OnnxFaceDetector, anchor_centres,
                                                   letterbox, non_maximum_suppression, normalise)
from inference_server.models.onnx_landmarker import OnnxLandmarker, crop_matrix
from inference_server.models.registry import choose, format_listing, load_records, scan, sha256_file

FRAME_HW = (720, 1280)  # letterboxed to 640 x 360: factor 2 back to frame pixels


def _box(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([x0, y0, x1, y1], np.float64)


def _points(box: np.ndarray) -> np.ndarray:
    """Five plausible points inside a box (eyes, nose, mouth corners), input pixels."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    return np.array([[x0 + 0.3 * w, y0 + 0.4 * h], [x0 + 0.7 * w, y0 + 0.4 * h], [x0 + 0.5 * w, y0 + 0.6 * h],
                     [x0 + 0.35 * w, y0 + 0.8 * h], [x0 + 0.65 * w, y0 + 0.8 * h]])


def _crop_units(landmarks: np.ndarray, rect: tuple[float, float, float, float]) -> np.ndarray:
    """Frame landmarks as a landmarker's 64 px heatmap units inside the crop of ``rect``."""
    m = crop_matrix(rect)
    return (np.asarray(landmarks, np.float64) @ m[:, :2].T + m[:, 2]) / 4.0


# -- pre-processing and layout facts ----------------------------------------------------------------------

def test_anchor_centres_are_row_major_cells_two_per_cell() -> None:
    centres = anchor_centres((640, 640), 32)
    assert centres.shape == (20 * 20 * 2, 2)
    # cell (row 1, column 2) is cell 22; its two anchors are rows 44 and 45, both at (x 64, y 32)
    assert centres[44].tolist() == [64.0, 32.0] and centres[45].tolist() == [64.0, 32.0]
    assert centres[2].tolist() == [32.0, 0.0] and centres[-1].tolist() == [608.0, 608.0]
    assert len(anchor_centres((640, 640), 8)) == 12800 and len(anchor_centres((640, 640), 16)) == 3200


def test_letterbox_is_bgr_at_the_top_left_zero_padded_and_scales_back() -> None:
    frame = np.zeros((720, 1280, 3), np.uint8)
    frame[...] = (10, 20, 200)  # RGB
    canvas, (sx, sy) = letterbox(frame)
    assert canvas.shape == (640, 640, 3) and (sx, sy) == (2.0, 2.0)
    assert canvas[0, 0].tolist() == [200.0, 20.0, 10.0] and canvas[359, 639].tolist() == [200.0, 20.0, 10.0]
    assert not canvas[360:].any(), "the rest of the square is zero"
    small = np.full((100, 200, 3), 255, np.uint8)
    canvas, scale = letterbox(small)
    assert scale == (1.0, 1.0) and canvas[:100, :200].min() == 255 and not canvas[100:].any()  # never enlarged
    anchor, yolo = normalise(canvas, "anchor"), normalise(canvas, "yolo")
    assert anchor.shape == yolo.shape == (1, 3, 640, 640)
    assert anchor[0, :, 0, 0].tolist() == [127.5 / 128.0] * 3 and anchor[0, 0, 639, 639] == -127.5 / 128.0
    assert yolo[0, :, 0, 0].tolist() == [1.0] * 3 and yolo[0, 0, 639, 639] == 0.0


def test_crop_matrix_scales_the_longer_side_to_195_px_centred() -> None:
    m = crop_matrix((100.0, 100.0, 300.0, 200.0))
    np.testing.assert_allclose(m, [[0.975, 0.0, -67.0], [0.0, 0.975, -18.25]])
    centre = m[:, :2] @ [200.0, 150.0] + m[:, 2]
    np.testing.assert_allclose(centre, [128.0, 128.0])


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    boxes = np.array([[0, 0, 100, 100], [10, 0, 110, 100], [0, 0, 100, 100], [300, 300, 400, 400]], np.float64)
    scores = np.array([0.6, 0.9, 0.6, 0.7])
    # box 1 overlaps box 0 (IoU 0.82 > 0.4) and is better: box 0 and its twin go; ties keep the lower index
    assert non_maximum_suppression(boxes, scores, NMS_IOU) == [1, 3]
    assert non_maximum_suppression(boxes[[0, 2]], scores[[0, 2]], NMS_IOU) == [0]


# -- detectors ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["scrfd_2.5g.onnx", "retinaface_10g.onnx"])
def test_anchor_detector_file_gives_known_faces_in_frame_pixels(name: str, tmp_path: Path) -> None:
    best = _box(101.0, 52.0, 229.0, 212.0)
    twin = best + [4.0, 2.0, 4.0, 2.0]        # same face, worse score, other stride: suppressed
    edge = _box(400.0, 100.0, 496.0, 220.0)   # score exactly the threshold: kept
    weak = _box(420.0, 240.0, 500.0, 340.0)   # just below: dropped
    path = make_anchor_detector(tmp_path, [(best, _points(best), 0.875, 16), (twin, _points(twin), 0.75, 8),
                                           (edge, _points(edge), 0.5, 32), (weak, _points(weak), 0.4921875, 8)],
                                name=name)
    detector = OnnxFaceDetector(path, "cpu", name=Path(name).stem)
    assert detector.layout == "anchor"
    found = detector.detect(np.zeros((*FRAME_HW, 3), np.uint8))
    assert [f.score for f in found] == [0.875, 0.5]
    for face, box in zip(found, (best, edge)):
        np.testing.assert_allclose(face.rect, box * 2.0, atol=1e-4)
        np.testing.assert_allclose(face.points5, _points(box) * 2.0, atol=1e-4)


def test_yolo_detector_file_gives_known_faces_in_frame_pixels(tmp_path: Path) -> None:
    best = _box(300.0, 40.0, 420.0, 190.0)
    twin = best + [6.0, 0.0, 6.0, 0.0]         # overlapping, worse: suppressed
    edge = _box(20.0, 200.0, 100.0, 300.0)     # score exactly 0.5: yoloface keeps only scores above it
    other = _box(500.0, 200.0, 600.0, 330.0)
    path = make_yolo_detector(tmp_path, [(best, _points(best), 0.8125, 7000), (twin, _points(twin), 0.625, 10),
                                         (edge, _points(edge), 0.5, 200), (other, _points(other), 0.5625, 8399)])
    detector = OnnxFaceDetector(path, "cpu", name="yoloface_8n")
    assert detector.layout == "yolo"
    found = detector.detect(np.zeros((*FRAME_HW, 3), np.uint8))
    assert [f.score for f in found] == [0.8125, 0.5625]
    for face, box in zip(found, (best, other)):
        np.testing.assert_allclose(face.rect, box * 2.0, atol=1e-4)
        np.testing.assert_allclose(face.points5, _points(box) * 2.0, atol=1e-4)
    assert SCORE_THRESHOLD == 0.5


# -- landmarkers ----------------------------------------------------------------------------------------------

def _reference_landmarks() -> np.ndarray:
    """68 distinct points in a 200 x 240 box (a grid), frame pixels."""
    grid = np.stack(np.meshgrid(np.linspace(0, 1, 17), np.linspace(0, 1, 4)), axis=-1).reshape(-1, 2)[:68]
    return (grid * [200.0, 240.0] + [150.0, 90.0]).astype(np.float64)


@pytest.mark.parametrize("layout", ["2dfan4", "peppa_wutz"])
def test_landmarker_file_gives_known_points_and_score(layout: str, tmp_path: Path) -> None:
    rect = (140.0, 80.0, 360.0, 340.0)
    truth = _reference_landmarks()
    units = _crop_units(truth, rect)
    path = (make_2dfan4(tmp_path, units, peak=0.72) if layout == "2dfan4"
            else make_peppa_wutz(tmp_path, units, confidence=0.76))
    landmarker = OnnxLandmarker(path, "cpu", name=layout)
    assert landmarker.layout == layout
    fitted = landmarker.fit(np.zeros((480, 640, 3), np.uint8), rect)
    assert fitted.points.shape == (68, 2) and fitted.points.dtype == np.float32
    np.testing.assert_allclose(fitted.points, truth, atol=1e-3)
    assert fitted.score == pytest.approx(0.8)  # 0.72 / 0.9 and 0.76 / 0.95


def test_a_low_landmarker_score_falls_back_to_dlib(dlib_models: DlibFaceModels, faces_dir: Path,
                                                   tmp_path: Path) -> None:
    rgb8 = load_rgb8(faces_dir / "fr_obama.jpg")
    (face,) = dlib_models.detect(rgb8)
    units = _crop_units(face.landmarks + 3.0, face.rect)
    confident = ModelFaceFinder(dlib_models, landmarker=OnnxLandmarker(make_2dfan4(tmp_path / "a", units, 0.46),
                                                                        "cpu"))
    unsure = ModelFaceFinder(dlib_models, landmarker=OnnxLandmarker(make_2dfan4(tmp_path / "b", units, 0.45), "cpu"))
    np.testing.assert_allclose(confident.landmarks(rgb8, face.rect), face.landmarks + 3.0, atol=1e-3)  # 0.511 > 0.5
    # 0.45 / 0.9 is not above FaceFusion's threshold (0.5): dlib's fit of the same box
    np.testing.assert_array_equal(unsure.landmarks(rgb8, face.rect), dlib_models.landmarks(rgb8, face.rect))


# -- the finder: detector + landmarker, 68 -> 5 and the templates ---------------------------------------------

@pytest.fixture(scope="module")
def real_face(dlib_models: DlibFaceModels, faces_dir: Path) -> tuple[np.ndarray, tuple[float, float, float, float],
                                                                     np.ndarray]:
    """A real photo, dlib's box and 68 landmarks of its face."""
    rgb8 = load_rgb8(faces_dir / "fr_obama.jpg")
    (face,) = dlib_models.detect(rgb8)
    return rgb8, face.rect, face.landmarks.astype(np.float64)


def make_finder_files(folder: Path, rgb8: np.ndarray, rect: tuple[float, float, float, float],
                      landmarks: np.ndarray) -> tuple[Path, Path, np.ndarray]:
    """A scrfd_2.5g stand-in finding the face at ``rect`` (points: the 68->5 of ``landmarks``) and a 2dfan4
    stand-in fitting ``landmarks`` in that box. Returns both paths and the box the detector decodes to."""
    _, (sx, sy) = letterbox(rgb8)
    scale = np.array([sx, sy, sx, sy])
    box_in = np.asarray(rect, np.float64) / scale
    stride = 32
    # the decoded box is the anchor plus distances: exactly box_in, back in frame pixels
    detector = make_anchor_detector(folder, [(box_in, points5_from_68(landmarks) / [sx, sy], 0.9375, stride)])
    x0, y0, x1, y1 = (float(v) for v in box_in * scale)
    decoded = (x0, y0, x1, y1)
    landmarker = make_2dfan4(folder, _crop_units(landmarks, decoded), peak=0.855)
    return detector, landmarker, np.asarray(decoded)


def test_finder_detects_with_the_registry_name_and_five_points_agree(
        dlib_models: DlibFaceModels, real_face: tuple[np.ndarray, tuple[float, float, float, float], np.ndarray],
        tmp_path: Path) -> None:
    rgb8, rect, landmarks = real_face
    det_path, lm_path, box = make_finder_files(tmp_path, rgb8, rect, landmarks)
    detector = OnnxFaceDetector(det_path, "cpu", name="scrfd_2.5g")
    finder = ModelFaceFinder(dlib_models, detector, OnnxLandmarker(lm_path, "cpu", name="2dfan4"))
    (found,) = finder.detect_with_fallback(rgb8, min_score=100.0)  # (dlib's HOG margin does not apply)
    assert found.detector == "scrfd_2.5g" and found.score == 0.9375
    np.testing.assert_allclose(found.rect, box, atol=1e-3)
    np.testing.assert_allclose(found.landmarks, landmarks, atol=1e-3)
    # FaceFusion's 68 -> 5 (eye means 36-41 / 42-47, nose tip 30, mouth corners 48, 54) is ours: the five points
    # of the fitted 68 are the detector's own five
    (raw,) = detector.detect(rgb8)
    np.testing.assert_allclose(points5_from_68(found.landmarks), raw.points5, atol=1e-3)
    # and they sit on the alignment templates: the similarity fit leaves small residuals (real face, 128 px)
    for template, size in (("arcface_128", 128), ("arcface_112_v2", 112), ("ffhq_512", 512)):
        m = estimate_alignment(raw.points5, template, size)
        mapped = raw.points5 @ m[:, :2].T + m[:, 2]
        assert np.abs(mapped - template_points(template, size)).max() < 0.06 * size, template


def test_analysis_records_the_neural_detector_and_re_analyses_when_it_changes(
        dlib_models: DlibFaceModels, real_face: tuple[np.ndarray, tuple[float, float, float, float], np.ndarray],
        tmp_path: Path) -> None:
    from inference_server.store.analysis_file import AnalysisInvalid, export_analysis, parse_analysis
    from inference_server.store.shot_db import ShotDatabase
    from inference_server.temporal.analyse import AnalyseConfig, ShotAnalyser

    rgb8, rect, landmarks = real_face
    det_path, lm_path, box = make_finder_files(tmp_path, rgb8, rect, landmarks)
    finder = ModelFaceFinder(dlib_models, OnnxFaceDetector(det_path, "cpu", name="scrfd_2.5g"),
                             OnnxLandmarker(lm_path, "cpu", name="2dfan4"))
    db = ShotDatabase(tmp_path / "shots.db")
    hashes = [f"{frame:064x}" for frame in range(3)]
    plain = [ShotAnalyser(db, "sh", dlib_models, AnalyseConfig()).analyse(f, rgb8, hashes[f]) for f in range(1)]
    assert [o.origin for o in plain[0].observations] == ["detect"]
    config = AnalyseConfig(detector="scrfd_2.5g@0123456789abcdef", landmarker="2dfan4@fedcba9876543210")
    assert set(config.as_dict()) == set(AnalyseConfig().as_dict()) | {"detector", "landmarker"}
    analyser = ShotAnalyser(db, "sh", finder, config)
    results = [analyser.analyse(f, rgb8, hashes[f]) for f in range(3)]
    assert not results[0].replayed, "another detector re-analyses the shot"
    assert results[0].keyframe and [o.origin for o in results[0].observations] == ["scrfd_2.5g"]
    assert [o.origin for o in results[1].observations] == ["track"]
    for result in results:
        (obs,) = result.observations
        np.testing.assert_allclose(obs.landmarks, landmarks, atol=1e-3)  # the landmarker's fit, tracked too
    np.testing.assert_allclose(results[0].observations[0].rect, box, atol=1e-3)
    data = export_analysis(db, "sh", dlib_models.identifier)
    assert data is not None and b'"origin":"scrfd_2.5g"' in data
    with pytest.raises(AnalysisInvalid, match="analysis_settings"):
        parse_analysis(data, AnalyseConfig().as_dict())  # a dlib session does not import it
    parsed = parse_analysis(data, config.as_dict())
    assert parsed.settings["detector"] == config.detector and parsed.frames[0].observations[0].origin == "scrfd_2.5g"
    again = ShotAnalyser(db, "sh", finder, config).analyse(0, rgb8, hashes[0])
    assert again.replayed, "the same models replay the stored analysis"


# -- registry -------------------------------------------------------------------------------------------------

def _registry_with(tmp_path: Path, digests: dict[str, str]) -> Path:
    """The shipped registry with ``digests`` recorded for some records (as if published)."""
    from inference_server.models.registry import default_registry_path

    data = json.loads(default_registry_path().read_text())
    for record in data["models"]:
        if record["name"] in digests:
            record["sha256"], record["source"] = digests[record["name"]], "test"
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(data))
    return path


def test_registry_picks_a_verified_detector_by_default_and_refuses_unverified_ones(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    box = _box(100.0, 100.0, 200.0, 220.0)
    make_anchor_detector(folder, [(box, _points(box), 0.9, 16)], name="scrfd_2.5g.onnx")
    make_yolo_detector(folder, [(box, _points(box), 0.9, 5)])
    make_peppa_wutz(folder, np.full((68, 2), 32.0), 0.9)
    shipped = load_records()
    by_name = {r.name: r for r in shipped}
    for name in ("yoloface_8n", "retinaface_10g", "scrfd_2.5g"):
        assert by_name[name].kind == "detector" and by_name[name].inputs["input"] == (1, 3, 640, 640)
    for name in ("2dfan4", "peppa_wutz"):
        assert by_name[name].kind == "landmarker" and by_name[name].inputs["input"] == (1, 3, 256, 256)
    statuses = scan(folder, shipped, embedded_dir=tmp_path / "no-dlib")
    default = choose("detector", "", statuses)
    assert default.record.name == "dlib-hog" and default.embedded and "not used by default" in default.note
    with pytest.raises(ModelRefused, match="--allow-unverified"):
        choose("detector", "scrfd_2.5g", statuses)
    named = choose("detector", "scrfd_2.5g", statuses, allow_unverified=True)
    assert named.path == folder / "scrfd_2.5g.onnx" and not named.verified
    verified = load_records(_registry_with(tmp_path, {"scrfd_2.5g": sha256_file(folder / "scrfd_2.5g.onnx"),
                                                      "peppa_wutz": sha256_file(folder / "peppa_wutz.onnx")}))
    statuses = scan(folder, verified, embedded_dir=tmp_path / "no-dlib")
    picked = choose("detector", None, statuses)  # yoloface_8n is preferred but does not verify
    assert picked.record.name == "scrfd_2.5g" and picked.verified and picked.path == folder / "scrfd_2.5g.onnx"
    assert choose("landmarker", None, statuses).record.name == "peppa_wutz"
    listing = format_listing(statuses)
    for name in ("yoloface_8n", "retinaface_10g", "scrfd_2.5g", "2dfan4", "peppa_wutz"):
        assert name in listing


# -- end to end -------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def neural_server(dlib_models: DlibFaceModels, real_face: tuple[np.ndarray, tuple[float, float, float, float],
                                                                np.ndarray],
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    from inference_server.server.app import ServerConfig, start_server

    rgb8, rect, landmarks = real_face
    folder = tmp_path_factory.mktemp("neural-models")
    make_finder_files(folder, rgb8, rect, landmarks)
    plates = tmp_path_factory.mktemp("neural-plates")
    for frame in (1001, 1002):
        write_exr(plates / f"plate.{frame}.exr", srgb8_to_linear(rgb8), ("R", "G", "B"))
    running = start_server(ServerConfig(port=0, device="cpu", cache_dir=tmp_path_factory.mktemp("neural-cache"),
                                        models_dir=folder, allow_roots=(tmp_path_factory.getbasetemp(),),
                                        allow_unverified=True), models=dlib_models)
    yield f"127.0.0.1:{running.port}", plates
    running.stop(grace=2.0)


def test_server_analyses_and_swaps_with_the_chosen_detector_and_says_so(
        neural_server: tuple[str, Path], real_face: tuple[np.ndarray, tuple[float, float, float, float], np.ndarray],
        faces_dir: Path, tmp_path: Path) -> None:
    from facebridge.client.grpc_client import ClientError, FaceBridgeClient, FrameJob
    from facebridge.settings import RenderParams

    address, plates = neural_server
    jobs = [FrameJob(f, str(plates / f"plate.{f}.exr"), str(tmp_path / f"out.{f}.exr")) for f in (1001, 1002)]
    source = [str(faces_dir / "fr_alex_lacamoire.png")]
    params = RenderParams(detector="scrfd_2.5g", landmarker="2dfan4", allow_unverified=True, stabilise=0.0)
    with FaceBridgeClient(address, timeout=300.0) as client:
        with pytest.raises(ClientError, match="allow-unverified"):
            client.open_session(source, shot="neural", params=RenderParams(detector="scrfd_2.5g"))
        session = client.open_session(source, shot="neural", params=params)
        assert any(m.startswith("scrfd_2.5g@") for m in session.model_ids), session.model_ids
        assert any(m.startswith("2dfan4@") for m in session.model_ids), session.model_ids
        analysed = list(client.analyse(session.session_id, jobs, use_paths=True))
        assert [a.status for a in analysed] == ["ok", "ok"] and analysed[0].keyframe, analysed
        outcomes = list(client.process(session.session_id, jobs, use_paths=True))
    for outcome in outcomes:
        assert outcome.status == "ok" and outcome.analysed, outcome.message
        (face,) = outcome.faces
        assert face["detector"] == "scrfd_2.5g" and face["track"] >= 0 and face["swapped"], face
    out, _ = read_exr(tmp_path / "out.1001.exr")
    plate, _ = read_exr(plates / "plate.1001.exr")
    changed = np.abs(out[..., :3] - plate[..., :3]).max(axis=2) > 1e-3
    ys, xs = np.nonzero(changed)
    x0, y0, x1, y1 = real_face[1]
    assert changed.sum() > 2000 and x0 < xs.mean() < x1 and y0 < ys.mean() < y1  # the face, swapped


def test_session_choices_give_the_finder(dlib_models: DlibFaceModels, faces_dir: Path, tmp_path: Path) -> None:
    from inference_server.models.pool import ModelPool
    from inference_server.server.errors import ModelUnavailable
    from inference_server.server.model_stages import choose_finder
    from inference_server.server.sessions import SessionParams

    folder = tmp_path / "models"
    box = _box(100.0, 100.0, 200.0, 220.0)
    make_anchor_detector(folder, [(box, _points(box), 0.9, 16)], name="retinaface_10g.onnx")
    pool = ModelPool(folder, tmp_path / "cache", "cpu", allow_unverified=True)
    default = choose_finder(pool, SessionParams(), dlib_models)
    assert default.finder is dlib_models and default.model_ids == ()  # unchanged: dlib's own models
    assert [n for n in default.notes if "not used by default: retinaface_10g" in n] == list(default.notes) != []
    with pytest.raises(ModelUnavailable, match="allow-unverified"):
        choose_finder(pool, SessionParams(detector="retinaface_10g"), dlib_models)
    neural = choose_finder(pool, SessionParams(detector="retinaface_10g", allow_unverified=True), dlib_models)
    assert isinstance(neural.finder, ModelFaceFinder) and neural.detector_id.startswith("retinaface_10g@")
    assert neural.landmarker_id == "" and neural.finder.identifier.endswith(neural.detector_id)
    cnn = choose_finder(pool, SessionParams(detector="dlib-cnn"), dlib_models)
    assert isinstance(cnn.finder, ModelFaceFinder) and cnn.finder.cnn_only and cnn.model_ids == ("dlib-cnn",)
    rgb8 = load_rgb8(faces_dir / "fr_obama.jpg")
    assert [d.detector for d in cnn.finder.detect_with_fallback(rgb8, 0.25)] == ["cnn"]  # HOG would find it
