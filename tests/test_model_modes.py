"""Modes and models end to end: restore with no model files, aligned ONNX models from a models folder.

Real faces, real EXR plates, real servers on loopback ports; the ONNX files are small synthetic models with
the real files' input and output names and shapes (tests/onnx_fixtures.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest
from onnx_fixtures import make_bisenet, make_inswapper, make_restorer
from support import face_landmarks, face_zone, make_plate, make_sequence, read_exr, same_bits

from facebridge.client.grpc_client import ClientError, FaceBridgeClient, FrameJob, FrameOutcome, SessionInfo
from facebridge.settings import RenderParams
from inference_server.server.app import ServerConfig, start_server

CLI = [sys.executable, "-m", "facebridge"]


@pytest.fixture(scope="module")
def plate(faces_dir: Path, dlib_models, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A linear half EXR of a real face (R,G,B,A,Z,N.x; HDR, NaN and Inf away from the face) and its zone."""
    return make_plate(faces_dir / "fr_obama.jpg", tmp_path_factory.mktemp("plate") / "plate.exr", dlib_models)


@pytest.fixture(scope="module")
def models_server(dlib_models, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A server whose models folder holds synthetic FaceFusion-format files (no arcface embedder)."""
    folder = tmp_path_factory.mktemp("models")
    make_inswapper(folder)                                      # pass-through: returns its target
    make_restorer(folder, 512, constant=0.75, name="gpen_bfr_512.onnx")
    make_bisenet(folder)                                        # block-wise known labels
    running = start_server(ServerConfig(port=0, device="cpu", cache_dir=tmp_path_factory.mktemp("cache"),
                                        models_dir=folder, allow_roots=(tmp_path_factory.getbasetemp(),),
                                        allow_unverified=True), models=dlib_models)
    yield f"127.0.0.1:{running.port}", folder
    running.stop(grace=2.0)


def _render(address: str, plate: Path, out: Path, params: RenderParams,
            sources: list[str]) -> tuple[SessionInfo, FrameOutcome]:
    with FaceBridgeClient(address, timeout=120.0) as client:
        session = client.open_session(sources, shot=f"t-{out.stem}", params=params)
        (outcome,) = client.process(session.session_id, [FrameJob(1, str(plate), str(out))], use_paths=True)
        return session, outcome


def test_passthrough_inswapper_returns_the_plate(models_server: tuple[str, Path], plate: tuple[Path, np.ndarray],
                                                 faces_dir: Path, tmp_path: Path) -> None:
    address, _ = models_server
    path, zone = plate
    params = RenderParams(swapper="inswapper_128", allow_unverified=True, stabilise=0.0)
    session, outcome = _render(address, path, tmp_path / "out.exr", params, [str(faces_dir / "fr_alex_lacamoire.png")])
    assert outcome.status == "ok", outcome.message
    assert any("inswapper_128" in m for m in session.model_ids), session.model_ids
    assert any("--allow-unverified" in n or "unverified" in n for n in session.notes)
    before, _ = read_exr(path)
    after, spec = read_exr(tmp_path / "out.exr")
    assert same_bits(before[~zone], after[~zone]).all(), "pixels outside the face changed"
    inside = np.abs(after[zone][:, :3] - before[zone][:, :3])
    assert np.nanmax(inside) <= 1e-3, f"a pass-through swapper moved the face by {np.nanmax(inside)}"
    assert "inswapper_128" in spec.get_string_attribute("facebridge:models")


def test_unverified_swapper_is_refused_without_the_flag(models_server: tuple[str, Path],
                                                        plate: tuple[Path, np.ndarray], faces_dir: Path,
                                                        tmp_path: Path) -> None:
    address, _ = models_server
    with pytest.raises(ClientError, match="--allow-unverified"):
        _render(address, plate[0], tmp_path / "out.exr", RenderParams(swapper="inswapper_128"),
                [str(faces_dir / "fr_alex_lacamoire.png")])
    assert not (tmp_path / "out.exr").exists()


def test_constant_restorer_lands_exactly_where_the_region_weights_say(
    models_server: tuple[str, Path], plate: tuple[Path, np.ndarray], dlib_models, tmp_path: Path
) -> None:
    address, _ = models_server
    path, zone = plate
    before, _ = read_exr(path)
    regions = {name: 0.0 for name in ("brows", "nose", "mouth", "cheeks", "forehead", "jaw", "skin")}
    params = RenderParams(mode="restore", restorer="gpen_bfr_512", allow_unverified=True, stabilise=0.0,
                          regions={**regions, "eyes": 1.0}, colour_match="none")
    _, outcome = _render(address, path, tmp_path / "eyes.exr", params, [])
    assert outcome.status == "ok", outcome.message
    after, _ = read_exr(tmp_path / "eyes.exr")
    changed = ~same_bits(before, after).all(axis=2)
    assert isinstance(changed, np.ndarray)  # per pixel (numpy's stubs allow a scalar for axis=2)
    assert changed.any() and not changed[~zone].any()
    (landmarks,) = face_landmarks(dlib_models, _proxy8(before))
    eyes = np.zeros(changed.shape, np.uint8)
    import cv2

    for idx in (range(36, 42), range(42, 48)):
        hull = cv2.convexHull(landmarks[list(idx)].astype(np.float32)).astype(np.int32)
        cv2.fillConvexPoly(eyes, hull, 1)
    # the constant grey shows at both eye centres (R = G = B, the same value), nothing moved far from them
    centres = [landmarks[list(idx)].mean(0).round().astype(int) for idx in (range(36, 42), range(42, 48))]
    greys = [after[y, x, :3] for x, y in centres]
    for grey in greys:
        assert np.ptp(grey) < 1e-3, grey
    assert abs(float(greys[0][0]) - float(greys[1][0])) < 1e-3 and np.ptp(before[centres[0][1], centres[0][0], :3]) > 1e-2
    grown = cv2.dilate(eyes, np.ones((3, 3), np.uint8), iterations=int(0.2 * np.ptp(landmarks[:, 0])))
    assert not changed[grown == 0].any(), "the restorer showed outside the eye region"
    # with all regions at 1 the same restorer covers the whole face
    _, outcome = _render(address, path, tmp_path / "all.exr",
                         RenderParams(mode="restore", restorer="gpen_bfr_512", allow_unverified=True,
                                      stabilise=0.0, colour_match="none"), [])
    whole, _ = read_exr(tmp_path / "all.exr")
    assert (~same_bits(before, whole).all(axis=2)).sum() > 5 * changed.sum()


def _proxy8(linear: np.ndarray) -> np.ndarray:
    from support import linear_to_srgb8

    return linear_to_srgb8(np.nan_to_num(linear[..., :3], nan=0.0, posinf=1.0))


def test_restore_mode_works_with_no_model_files(server_address: str, plate: tuple[Path, np.ndarray],
                                                 tmp_path: Path) -> None:
    """``facebridge process --mode restore`` on a server with an empty models folder: the embedded enhancer."""
    path, zone = plate
    result = subprocess.run(
        CLI + ["process", "--mode", "restore", "--input", str(path), "--output", str(tmp_path / "r.exr"),
               "--server", server_address, "--progress", "none", "--report", str(tmp_path / "report.json"),
               "--stabilise", "0"],
        capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL, env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    assert "embedded classical enhancer" in result.stderr
    before, _ = read_exr(path)
    after, spec = read_exr(tmp_path / "r.exr")
    assert same_bits(before[~zone], after[~zone]).all()
    assert not same_bits(before[zone], after[zone]).all(), "the enhancer changed nothing"
    assert np.isnan(after).sum() == np.isnan(before).sum() and np.isinf(after).sum() == np.isinf(before).sum()
    assert "classical-enhancer" in spec.get_string_attribute("facebridge:models")
    assert spec.get_string_attribute("facebridge:mode") == "restore"
    report = (tmp_path / "report.json").read_text()
    assert "embedded classical enhancer" in report


def test_swap_needs_a_source_and_restore_does_not(server_address: str, plate: tuple[Path, np.ndarray],
                                                   faces_dir: Path, tmp_path: Path) -> None:
    path, _ = plate
    with FaceBridgeClient(server_address, timeout=120.0) as client:
        session = client.open_session([], shot="no-source", params=RenderParams(stabilise=0.0))
        (outcome,) = client.process(session.session_id, [FrameJob(1, str(path), str(tmp_path / "o.exr"))], True)
    assert outcome.status == "failed" and "needs a source image" in outcome.message
    session, outcome = _render(server_address, path, tmp_path / "sr.exr",
                               RenderParams(mode="swap+restore", stabilise=0.0),
                               [str(faces_dir / "fr_alex_lacamoire.png")])
    assert outcome.status == "ok", outcome.message
    assert any("classical-enhancer" in m for m in session.model_ids)
    written = oiio.ImageInput.open(str(tmp_path / "sr.exr"))
    assert written is not None
    assert written.spec().get_string_attribute("facebridge:mode") == "swap+restore"


def test_face_parser_refines_the_region_masks(models_server: tuple[str, Path], plate: tuple[Path, np.ndarray],
                                              tmp_path: Path) -> None:
    address, _ = models_server
    path, zone = plate
    before, _ = read_exr(path)
    base = RenderParams(mode="restore", restorer="gpen_bfr_512", allow_unverified=True, stabilise=0.0,
                        colour_match="none", regions={"eyes": 0.0, "nose": 0.0})
    outputs = {}
    for parser in ("none", "bisenet_resnet_34"):
        session, outcome = _render(address, path, tmp_path / f"{parser}.exr",
                                   RenderParams(**{**base.as_dict(), "parser": parser}), [])
        assert outcome.status == "ok", outcome.message
        assert any("bisenet_resnet_34" in m for m in session.model_ids) == (parser != "none")
        outputs[parser], _ = read_exr(tmp_path / f"{parser}.exr")
        assert same_bits(before[~zone], outputs[parser][~zone]).all()
    differs = ~same_bits(outputs["none"], outputs["bisenet_resnet_34"]).all(axis=2)
    assert isinstance(differs, np.ndarray)  # per pixel (numpy's stubs allow a scalar for axis=2)
    assert differs.any() and not differs[~zone].any(), "the parser's labels did not change the region masks"


def test_refined_region_map_follows_the_parser_outline() -> None:
    from inference_server.compositing.regions import refined_region_weight_map, region_weight_map

    rng = np.random.default_rng(0)
    landmarks = _synthetic_landmarks()
    shape = (200, 200)
    eyes = np.zeros(shape, np.float32)
    eyes[20:40, 20:60] = 1.0                       # the parser's eyes: somewhere the landmarks do not put them
    weights = {"eyes": 0.0}
    refined = refined_region_weight_map(shape, landmarks, 120.0, weights, {"eyes": eyes})
    assert (refined[20:40, 20:60] == 0.0).all()    # exactly 0 inside the parser's eyes
    plain = region_weight_map(shape, landmarks, 120.0, weights)
    landmark_eyes = plain < 0.5
    outside = landmark_eyes & (eyes == 0)
    assert outside.any() and (refined[outside] == 1.0).all(), "landmark eyes the parser disagrees with stay skin"
    ones = refined_region_weight_map(shape, landmarks, 120.0, {}, {"eyes": eyes * rng.random(shape, np.float32)})
    assert (ones == 1.0).all()


def _synthetic_landmarks() -> np.ndarray:
    """A plausible frontal 68-point layout on a 200 px grid (jaw, brows, nose, eyes, mouth)."""
    t = np.linspace(-1.0, 1.0, 17)
    jaw = np.stack([100 + 60 * t, 100 + 70 * np.sqrt(1 - 0.8 * t**2) - 20], 1)
    brows = np.stack([np.r_[np.linspace(55, 90, 5), np.linspace(110, 145, 5)], np.full(10, 70.0)], 1)
    nose = np.stack([np.r_[np.full(4, 100.0), np.linspace(90, 110, 5)], np.r_[np.linspace(80, 110, 4), np.full(5, 118.0)]], 1)
    ring = np.linspace(0, 2 * np.pi, 7)[:-1]
    eye = np.stack([10 * np.cos(ring), 4 * np.sin(ring)], 1)
    eyes = np.concatenate([eye + [75, 88], eye + [125, 88]])
    ring20 = np.linspace(0, 2 * np.pi, 21)[:-1]
    mouth = np.stack([100 + 22 * np.cos(ring20), 140 + 8 * np.sin(ring20)], 1)
    return np.concatenate([jaw, brows, nose, eyes, mouth]).astype(np.float32)


GOLDEN = Path(__file__).resolve().parents[2] / "shared" / "data" / "gpen_golden"


@pytest.fixture(scope="module")
def gpen_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The golden tiny GPEN (64 px, random weights) saved as a plain state_dict ``.pth``."""
    import torch

    golden = GOLDEN / "gpen_small128.pt"
    if not golden.is_file():
        pytest.skip(f"GPEN golden data not found at {GOLDEN} (the shared data folder beside the repository)")
    state = torch.load(golden, map_location="cpu", weights_only=True)["state_dict"]
    path = tmp_path_factory.mktemp("gpen") / "my_gpen_128.pth"
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def reduced_precision_server(dlib_models, gpen_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server that runs fp16/bf16 even on a CPU without native support for them (slow, but real); its
    models folder holds the GPEN checkpoint (clients name model files, never server paths)."""
    running = start_server(ServerConfig(port=0, device="cpu", cache_dir=tmp_path_factory.mktemp("cache"),
                                        models_dir=gpen_checkpoint.parent, slow_cpu_precision=True,
                                        allow_roots=(tmp_path_factory.getbasetemp(),), allow_unverified=True),
                           models=dlib_models)
    yield f"127.0.0.1:{running.port}"
    running.stop(grace=2.0)


@pytest.fixture(scope="module")
def gpen_server(dlib_models, gpen_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server (native precision rules) whose models folder holds the GPEN checkpoint."""
    running = start_server(ServerConfig(port=0, device="cpu", cache_dir=tmp_path_factory.mktemp("cache"),
                                        models_dir=gpen_checkpoint.parent, allow_unverified=True,
                                        allow_roots=(tmp_path_factory.getbasetemp(),)), models=dlib_models)
    yield f"127.0.0.1:{running.port}"
    running.stop(grace=2.0)


def test_reduced_precision_on_a_cpu_without_it_runs_fp32_and_says_so(
    gpen_server: str, plate: tuple[Path, np.ndarray], gpen_checkpoint: Path, tmp_path: Path
) -> None:
    from inference_server.models.torch_runner import cpu_has_native

    server_address = gpen_server
    params = RenderParams(mode="restore", restorer=gpen_checkpoint.name, stabilise=0.0, precision="bf16",
                          allow_unverified=True)
    session, outcome = _render(server_address, plate[0], tmp_path / "g.exr", params, [])
    assert outcome.status == "ok", outcome.message
    expected = "bf16" if cpu_has_native("bf16") else "fp32"
    assert any(m.startswith("my_gpen_128") and m.endswith(f":{expected}") for m in session.model_ids)
    assert cpu_has_native("bf16") or any("running fp32" in n for n in session.notes)


def test_gpen_checkpoint_restores_through_the_server_in_bf16(reduced_precision_server: str,
                                                              plate: tuple[Path, np.ndarray],
                                                              gpen_checkpoint: Path, tmp_path: Path) -> None:
    server_address = reduced_precision_server
    path, zone = plate
    params = RenderParams(mode="restore", restorer=gpen_checkpoint.name, stabilise=0.0, precision="bf16")
    with pytest.raises(ClientError, match="--allow-unverified"):
        _render(server_address, path, tmp_path / "refused.exr", params, [])
    params = RenderParams(**{**params.as_dict(), "allow_unverified": True})
    session, outcome = _render(server_address, path, tmp_path / "gpen.exr", params, [])
    assert outcome.status == "ok", outcome.message
    assert any(m.startswith("my_gpen_128") and m.endswith(":bf16") for m in session.model_ids), session.model_ids
    before, _ = read_exr(path)
    after, _ = read_exr(tmp_path / "gpen.exr")
    assert same_bits(before[~zone], after[~zone]).all()
    assert not same_bits(before[zone], after[zone]).all()
    assert outcome.faces[0]["fp32_fallback"] is False


def test_export_onnx_command_agrees_with_torch(gpen_checkpoint: Path, tmp_path: Path) -> None:
    import onnxruntime as ort
    import torch

    from inference_server.models.gpen import load_gpen

    result = subprocess.run(CLI + ["export-onnx", str(gpen_checkpoint), str(tmp_path / "g.onnx")],
                            capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    session = ort.InferenceSession(str(tmp_path / "g.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"]
    x = np.random.default_rng(1).uniform(-1, 1, (1, 3, 128, 128)).astype(np.float32)
    with torch.inference_mode():
        expected = load_gpen(gpen_checkpoint)(torch.from_numpy(x)).numpy()
    got = session.run(None, {"input": x})[0]
    assert np.abs(got - expected).max() < 1e-4


def test_reduced_precision_overflow_is_recomputed_in_fp32_and_reported(
    reduced_precision_server: str, plate: tuple[Path, np.ndarray], gpen_checkpoint: Path, tmp_path: Path
) -> None:
    server_address = reduced_precision_server
    """A GPEN whose last RGB layer is scaled by 1e6 overflows fp16 (the "black face"); fp32 copes."""
    import torch

    state = torch.load(gpen_checkpoint, map_location="cpu", weights_only=True)
    last = sorted({k.rsplit(".", 2)[0] for k in state if k.startswith("generator.to_rgbs.")})[-1]
    for key in [k for k in state if k.startswith(last) and k.endswith("weight")]:
        state[key] = state[key] * 1e6
    torch.save(state, gpen_checkpoint.parent / "hot_gpen.pth")  # into the server's models folder
    params = RenderParams(mode="restore", restorer="hot_gpen.pth", allow_unverified=True,
                          stabilise=0.0, precision="fp16")
    _, outcome = _render(server_address, plate[0], tmp_path / "hot.exr", params, [])
    assert outcome.status == "ok", outcome.message
    assert outcome.faces[0]["fp32_fallback"] is True
    after, _ = read_exr(tmp_path / "hot.exr")
    before, _ = read_exr(plate[0])
    zone = plate[1]
    assert np.isfinite(after[zone]).all() and same_bits(before[~zone], after[~zone]).all()


def test_passthrough_inswapper_on_a_sequence_with_the_default_stabilisation(
    faces_dir: Path, dlib_models, tmp_path: Path
) -> None:
    """The command line with its defaults (analysis, smoothing, temporal stabilisation) over a short clip."""
    clip = make_sequence(faces_dir / "lp_d18.mp4", tmp_path / "clip", 3, start=60)
    models = tmp_path / "models"
    models.mkdir()
    make_inswapper(models)
    result = subprocess.run(
        CLI + ["process", "--models-dir", str(models), "--mode", "swap", "--swapper", "inswapper_128",
               "--allow-unverified", "--source", str(faces_dir / "fr_alex_lacamoire.png"), "--input", clip,
               "--output", str(tmp_path / "out" / "o.####.exr"), "--progress", "none",
               "--cache-dir", str(tmp_path / "cache")],
        capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL, env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    assert "inswapper_128" in result.stderr  # the unverified file is named in a note
    for frame in (1001, 1002, 1003):
        before, _ = read_exr(tmp_path / "clip" / f"plate.{frame}.exr")
        after, spec = read_exr(tmp_path / "out" / f"o.{frame}.exr")
        (landmarks,) = face_landmarks(dlib_models, _proxy8(before))
        zone = face_zone(before.shape[:2], landmarks, grow=0.8)
        assert same_bits(before[~zone], after[~zone]).all()
        assert np.abs(after - before).max() <= 1e-3
        assert "inswapper_128" in spec.get_string_attribute("facebridge:models")
