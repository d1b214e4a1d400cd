"""Issue 13 item 5: an aligned swap pastes back its change (``--paste residual``) or its face (``replace``).

The oracle swapper (tools/paste_eval.py ``write_oracle``) is an ONNX file with inswapper_128's inputs whose
output is a known face; it is loaded through the model pool like any inswapper file.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest
from support import load_rgb8, make_plate, read_exr, same_bits

from facebridge.client.grpc_client import FaceBridgeClient, FrameJob
from inference_server.compositing.controls import CompositeControls
from inference_server.faces.dlib_models import DlibFaceModels
from inference_server.faces.sources import prepare_sources
from inference_server.models.alignment import coverage_mask, estimate_alignment, points5_from_68, warp_to_crop
from inference_server.pipeline.frames import FramePlate
from inference_server.pipeline.render import RenderRequest, RenderServices, render_faces
from inference_server.pipeline.settings import RenderSettings
from inference_server.pipeline.stages import (AlignedSwapStage, ClassicalSwapStage, Stage, aligned_swap,
                                              with_paste)
from inference_server.pipeline.targets import FaceTarget
from inference_server.pipeline.timing import Stopwatch
from inference_server.server.app import ServerConfig, start_server
from inference_server.swap import ALGORITHM_ID, SwapParams

TOOL = Path(__file__).resolve().parents[1] / "tools" / "paste_eval.py"


@pytest.fixture(scope="module")
def paste_eval() -> ModuleType:
    spec = importlib.util.spec_from_file_location("paste_eval", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["paste_eval"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def oracle(paste_eval: ModuleType, faces_dir: Path, dlib_models: DlibFaceModels,
           tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A models folder whose inswapper_128.onnx returns fr_obama's face aligned on arcface_128 at 128 px."""
    rgb = load_rgb8(faces_dir / "fr_obama.jpg")
    (face,) = dlib_models.detect(rgb)[:1]
    folder = tmp_path_factory.mktemp("oracle")
    face128 = paste_eval.aligned_face(rgb, face.landmarks)
    paste_eval.write_oracle(folder / "inswapper_128.onnx", face128)
    return folder, face128


def _stage(paste_eval: ModuleType, oracle: tuple[Path, np.ndarray], paste: str, tmp_path: Path) -> Stage:
    return paste_eval.oracle_stage(oracle[0], tmp_path / "cache", paste)


# -- the stage: what each mode puts in the crop --------------------------------------------------------------


@pytest.fixture(scope="module")
def crop(faces_dir: Path, dlib_models: DlibFaceModels) -> tuple[np.ndarray, np.ndarray]:
    """fr_biden2's face crop (sRGB [0, 1]) and its landmarks in crop pixels."""
    rgb = load_rgb8(faces_dir / "fr_biden2.jpg")
    (face,) = dlib_models.detect(rgb)[:1]
    lo, hi = face.landmarks.min(0), face.landmarks.max(0)
    x0, y0 = (lo - 0.6 * (hi - lo)).astype(int).clip(0)
    x1, y1 = (hi + 0.6 * (hi - lo)).astype(int)
    return rgb[y0:y1, x0:x1].astype(np.float32) / 255.0, (face.landmarks - np.array([x0, y0])).astype(np.float32)


def test_replace_puts_the_model_face_in_the_crop_and_residual_its_change(
        crop: tuple[np.ndarray, np.ndarray], oracle: tuple[Path, np.ndarray]) -> None:
    image, landmarks = crop
    face128 = oracle[1]
    matrix = estimate_alignment(points5_from_68(landmarks), "arcface_128", 128)
    inside = coverage_mask(matrix, 128, image.shape[:2], feather=0.1) > 0.0
    model_face = warp_to_crop(face128, matrix, image.shape[:2])
    replaced, coverage = aligned_swap(image, landmarks, lambda x: face128, "arcface_128", 128, "replace")
    assert np.array_equal(coverage > 0.0, inside)
    assert np.array_equal(replaced[inside], model_face[inside]), "replace: the model's face, whatever the plate"
    assert np.array_equal(replaced[~inside], image[~inside])
    # whatever the target's detail, replace gives the same face; residual keeps the detail
    noisy = np.clip(image + np.random.default_rng(0).normal(0.0, 0.05, image.shape).astype(np.float32), 0.0, 1.0)
    replaced_noisy, _ = aligned_swap(noisy, landmarks, lambda x: face128, "arcface_128", 128, "replace")
    assert np.array_equal(replaced_noisy[inside], replaced[inside])
    kept, _ = aligned_swap(noisy, landmarks, lambda x: face128, "arcface_128", 128, "residual")
    plain, _ = aligned_swap(image, landmarks, lambda x: face128, "arcface_128", 128, "residual")
    added, found = (noisy - image)[inside], (kept - plain)[inside]
    assert float(np.dot(found.ravel(), added.ravel()) / np.dot(added.ravel(), added.ravel())) > 0.8
    assert np.array_equal(kept[~inside], noisy[~inside])
    # a model that changes nothing: residual gives back the crop to the bit, replace a resampled copy
    same, _ = aligned_swap(image, landmarks, lambda x: x, "arcface_128", 128, "residual")
    assert np.array_equal(same, image)
    resampled, _ = aligned_swap(image, landmarks, lambda x: x, "arcface_128", 128, "replace")
    assert not np.array_equal(resampled[inside], image[inside])
    with pytest.raises(ValueError):
        aligned_swap(image, landmarks, lambda x: x, "arcface_128", 128, "blend")


# -- a real plate through the pipeline ------------------------------------------------------------------------


def _render(plate: np.ndarray, target: FaceTarget, stage: Stage, sources: list, grain: float,
            models: DlibFaceModels, working_side: int = 1024) -> np.ndarray:
    settings = RenderSettings(controls=CompositeControls(grain=grain, colour_match="none"), stage=stage,
                              quality_checks=False, max_working_side=working_side)
    request = RenderRequest([target], sources, [s.label for s in sources], settings, "paste-test")
    return render_faces(FramePlate(plate, [0, 1, 2], "plate"), request, RenderServices(models, None, None),
                        Stopwatch()).pixels


def test_both_modes_on_a_real_plate_keep_outside_pixels_and_differ_in_detail_kept(
        paste_eval: ModuleType, oracle: tuple[Path, np.ndarray], faces_dir: Path, dlib_models: DlibFaceModels,
        tmp_path: Path) -> None:
    rgb = paste_eval.scaled_photo(load_rgb8(faces_dir / "fr_biden2.jpg"), dlib_models, 256.0)
    photo = tmp_path / "target.png"
    cv2.imwrite(str(photo), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    path, zone = make_plate(photo, tmp_path / "plate.exr", dlib_models, aovs=False)
    plate = read_exr(path)[0][..., :3].copy()
    grainy = paste_eval.grained(plate, paste_eval.GRAIN)
    (face,) = dlib_models.detect(rgb)[:1]
    target = FaceTarget(face.landmarks, face.rect)
    sources = prepare_sources([("obama", load_rgb8(faces_dir / "fr_obama.jpg"))], dlib_models)
    inner = paste_eval.inner_face(plate.shape[:2], face.landmarks)
    kept = {}
    for paste in ("residual", "replace"):
        stage = _stage(paste_eval, oracle, paste, tmp_path)
        for grain in (0.0, 1.0):
            clean = _render(plate, target, stage, sources, grain, dlib_models)
            noisy = _render(grainy, target, stage, sources, grain, dlib_models)
            assert same_bits(clean[~zone], plate[~zone]).all(), f"{paste}: pixels outside the face changed"
            assert same_bits(noisy[~zone], grainy[~zone]).all()
            assert not np.allclose(clean[inner], plate[inner], atol=1e-2), "the face was swapped"
            kept[paste, grain] = paste_eval.detail_kept(clean, noisy, plate, grainy, inner)
    # a crop larger than the working size (a large face): replace resizes its face, not its change
    stage = _stage(paste_eval, oracle, "replace", tmp_path)
    small_work = paste_eval.detail_kept(_render(plate, target, stage, sources, 0.0, dlib_models, 300),
                                        _render(grainy, target, stage, sources, 0.0, dlib_models, 300),
                                        plate, grainy, inner)
    assert small_work < 0.1, (small_work, kept)
    assert kept["residual", 0.0] > 0.4, kept   # the plate's fine detail survives the 128 px model
    assert kept["replace", 0.0] < 0.1, kept    # the model's face, without the target's detail
    assert kept["replace", 1.0] > 0.5 + kept["replace", 0.0], kept  # grain retention works in both modes
    assert kept["residual", 1.0] >= kept["residual", 0.0] - 0.02, kept


# -- cache keys -------------------------------------------------------------------------------------------------


def test_paste_enters_the_model_key_only_for_aligned_swaps(paste_eval: ModuleType, oracle: tuple[Path, np.ndarray],
                                                          tmp_path: Path) -> None:
    aligned = _stage(paste_eval, oracle, "residual", tmp_path)
    assert isinstance(aligned, AlignedSwapStage)
    keys = {p: RenderSettings(stage=with_paste(aligned, p)).model_key_material() for p in ("residual", "replace")}
    assert keys["residual"] != keys["replace"]
    classical = ClassicalSwapStage(SwapParams(), ALGORITHM_ID)
    assert with_paste(classical, "replace") is classical
    assert RenderSettings(stage=with_paste(classical, "replace")).model_key_material() == \
        RenderSettings(stage=classical).model_key_material() == RenderSettings().model_key_material()
    assert with_paste(None, "replace") is None


@pytest.fixture(scope="module")
def oracle_server(oracle: tuple[Path, np.ndarray], dlib_models: DlibFaceModels,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    running = start_server(ServerConfig(port=0, device="cpu", cache_dir=tmp_path_factory.mktemp("cache"),
                                        models_dir=oracle[0], allow_roots=(tmp_path_factory.getbasetemp(),),
                                        allow_unverified=True), models=dlib_models)
    yield f"127.0.0.1:{running.port}"
    running.stop(grace=2.0)


def test_through_the_server_paste_changes_an_aligned_swap_and_not_the_classical_one(
        oracle_server: str, paste_eval: ModuleType, faces_dir: Path, dlib_models: DlibFaceModels,
        tmp_path: Path) -> None:
    photo = tmp_path / "target.png"  # (a 200 px face: quick)
    rgb = paste_eval.scaled_photo(load_rgb8(faces_dir / "fr_biden2.jpg"), dlib_models, 200.0)
    cv2.imwrite(str(photo), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    path, zone = make_plate(photo, tmp_path / "plate.exr", dlib_models, aovs=False)
    source = [str(faces_dir / "fr_obama.jpg")]
    outputs, caches = {}, {}
    with FaceBridgeClient(oracle_server, timeout=300.0) as client:
        for swapper in ("inswapper_128", "classical-swap"):
            for paste in ("residual", "replace"):
                session = client.open_session(source, shot="paste", swapper=swapper, paste=paste,
                                              allow_unverified=True, stabilise=0.0, quality_checks=False)
                out = tmp_path / f"{swapper}_{paste}.exr"
                (outcome,) = client.process(session.session_id, [FrameJob(1, str(path), str(out))], use_paths=True)
                assert outcome.status == "ok", outcome.message
                outputs[swapper, paste] = read_exr(out)[0]
                caches[swapper, paste] = outcome.faces[0]["cache"]
    plate = read_exr(path)[0]
    for key, pixels in outputs.items():
        assert same_bits(pixels[~zone], plate[~zone]).all(), key
    assert caches["inswapper_128", "replace"] == "miss", "another paste is another model output"
    assert not same_bits(outputs["inswapper_128", "residual"], outputs["inswapper_128", "replace"]).all()
    assert caches["classical-swap", "replace"] == "hit", "the classical swap has no paste: the same model output"
    assert same_bits(outputs["classical-swap", "residual"], outputs["classical-swap", "replace"]).all()
