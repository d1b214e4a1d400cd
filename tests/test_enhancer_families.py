"""FaceFusion's face enhancers (codeformer, gfpgan_1.2/1.3/1.4, restoreformer_plus_plus, gpen_bfr_*) and the
``facebridge models`` listing.

The enhancer files here are small synthetic ONNX models with the real files' input/output names and shapes
(codeformer with its float64 ``weight``) computing known per-channel functions, so every expected value is
worked out by hand from FaceFusion 3.8.1's ``face_enhancer/core.py`` contract: RGB, ``(x / 255 - 0.5) / 0.5``,
NCHW; output clipped to [-1, 1] and mapped back with ``(x + 1) / 2``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx_fixtures import save_model

from facebridge.settings import RenderParams
from inference_server.models import alignment as al
from inference_server.models.adapters import OnnxRestorerAdapter
from inference_server.models.listing import format_models
from inference_server.models.onnx_restorer import (
    OnnxRestorer,
    restorer_postprocess,
    restorer_preprocess,
)
from inference_server.models.onnx_session import OnnxModelError
from inference_server.models.pool import ModelPool
from inference_server.models.registry import (
    default_registry_path,
    load_records,
    scan,
    sha256_file,
)
from inference_server.server.model_stages import choose_stage
from inference_server.server.sessions import SessionParams

GAIN = (2.0, 0.5, -1.0)        # per RGB channel, in the model's [-1, 1] space: R clips, B flips
WEIGHT_GAIN = 0.5              # codeformer stand-in: + 0.5 * (weight - 0.5) on every channel
FLAT = (0.8, 0.4, 0.2)         # the flat face's sRGB colour
# registry name -> (square size, FaceFusion template, has a weight input)
FAMILIES = {
    "codeformer": (512, "ffhq_512", True),
    "gfpgan_1.2": (512, "ffhq_512", False),
    "gfpgan_1.3": (512, "ffhq_512", False),
    "gfpgan_1.4": (512, "ffhq_512", False),
    "restoreformer_plus_plus": (512, "ffhq_512", False),
    "gpen_bfr_256": (256, "arcface_128", False),
    "gpen_bfr_512": (512, "ffhq_512", False),
    "gpen_bfr_1024": (1024, "ffhq_512", False),
    "gpen_bfr_2048": (2048, "ffhq_512", False),
}
FAMILY_OF = {"codeformer": "codeformer", "gfpgan_1.2": "gfpgan", "gfpgan_1.3": "gfpgan", "gfpgan_1.4": "gfpgan",
             "restoreformer_plus_plus": "restoreformer"}


def make_enhancer(path: Path, size: int, weight: str | None = None, extra: str | None = None,
                  weight_shape: tuple[int, ...] = (1,)) -> Path:
    """``input (1,3,S,S)`` -> ``output``: ``GAIN[c] * input[c]`` (+ ``WEIGHT_GAIN * (weight - 0.5)`` with a
    ``weight`` input of type ``weight`` ("double" as codeformer's, or "float"); ``extra`` adds an input that
    is tied in times zero)."""
    shape = [1, 3, size, size]
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)]
    inits = [numpy_helper.from_array(np.array(GAIN, np.float32).reshape(1, 3, 1, 1), "gain"),
             numpy_helper.from_array(np.array(0.5, np.float32), "half"),
             numpy_helper.from_array(np.array(WEIGHT_GAIN, np.float32), "weight_gain"),
             numpy_helper.from_array(np.array(0.0, np.float32), "zero")]
    nodes = [helper.make_node("Mul", ["input", "gain"], ["scaled"])]
    last = "scaled"
    if weight is not None:
        kind = TensorProto.DOUBLE if weight == "double" else TensorProto.FLOAT
        inputs.append(helper.make_tensor_value_info("weight", kind, list(weight_shape)))
        nodes += [helper.make_node("Cast", ["weight"], ["weight_f"], to=TensorProto.FLOAT),
                  helper.make_node("ReduceMean", ["weight_f"], ["weight_1"], keepdims=0),
                  helper.make_node("Sub", ["weight_1", "half"], ["weight_c"]),
                  helper.make_node("Mul", ["weight_c", "weight_gain"], ["weight_t"]),
                  helper.make_node("Add", [last, "weight_t"], ["weighted"])]
        last = "weighted"
    if extra is not None:
        inputs.append(helper.make_tensor_value_info(extra, TensorProto.FLOAT, [1]))
        nodes += [helper.make_node("Mul", [extra, "zero"], ["extra_zero"]),
                  helper.make_node("Add", [last, "extra_zero"], ["with_extra"])]
        last = "with_extra"
    nodes.append(helper.make_node("Identity", [last], ["output"]))
    graph = helper.make_graph(nodes, path.stem, inputs, [helper.make_tensor_value_info("output", TensorProto.FLOAT,
                                                                                     shape)], initializer=inits)
    return save_model(graph, path)


def make_family_file(folder: Path, name: str) -> Path:
    size, _, weighted = FAMILIES[name]
    return make_enhancer(folder / f"{name}.onnx", size, weight="double" if weighted else None)


def expected_flat(weight: float | None) -> np.ndarray:
    """The restored colour of a flat ``FLAT`` face, worked out by hand from the contract."""
    x = np.array(FLAT) * 2.0 - 1.0
    y = np.array(GAIN) * x + (WEIGHT_GAIN * (weight - 0.5) if weight is not None else 0.0)
    return (np.clip(y, -1.0, 1.0) + 1.0) / 2.0


def flat_face(template: str, size: int, crop_hw: tuple[int, int] = (300, 280)) -> tuple[np.ndarray, np.ndarray]:
    """A flat ``FLAT`` crop and five points that are an exact similarity of ``template`` (180 px face)."""
    angle, face_px = 0.15, 180.0
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) * (face_px / size)
    centre = np.array([crop_hw[1] / 2.0, crop_hw[0] / 2.0])
    points = (al.template_points(template, size) - size / 2.0) @ rotation.T + centre
    crop = np.broadcast_to(np.array(FLAT, np.float32), (*crop_hw, 3)).copy()
    return crop, points


@pytest.fixture(scope="module")
def family_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("enhancers")
    for name in FAMILIES:
        make_family_file(folder, name)
    return folder


@pytest.fixture(scope="module")
def pool(family_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> ModelPool:
    return ModelPool(family_dir, tmp_path_factory.mktemp("pool-cache"), "cpu", allow_unverified=True)


# -- pre/post-processing ---------------------------------------------------------------------------------------

def test_pre_and_post_processing_are_facefusions() -> None:
    """Our float RGB path against FaceFusion's uint8 BGR formulas (prepare_crop_frame / normalize_crop_frame)."""
    rng = np.random.default_rng(11)
    bgr8 = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    ff_input = np.expand_dims(((bgr8[:, :, ::-1] / 255.0 - 0.5) / 0.5).transpose(2, 0, 1), 0).astype(np.float32)
    ours = restorer_preprocess(bgr8[:, :, ::-1].astype(np.float32) / 255.0)
    assert ours.shape == ff_input.shape == (1, 3, 16, 16) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ff_input, atol=1e-6)
    np.testing.assert_allclose(ours[0, 0], bgr8[:, :, 2] / 127.5 - 1.0, atol=1e-6)  # channel 0 is red (BGR -> RGB)
    output = rng.uniform(-1.6, 1.6, (1, 3, 16, 16)).astype(np.float32)  # beyond [-1, 1]: clipped
    ff_bgr8 = ((np.clip(output[0], -1, 1) + 1) / 2).transpose(1, 2, 0)
    ff_bgr8 = (ff_bgr8 * 255.0).round().astype(np.uint8)[:, :, ::-1]
    ours_rgb = restorer_postprocess(output)
    assert ours_rgb.dtype == np.float32 and ours_rgb.min() >= 0.0 and ours_rgb.max() <= 1.0
    ours8 = (ours_rgb[:, :, ::-1] * 255.0).round().astype(np.int16)
    assert np.abs(ours8 - ff_bgr8.astype(np.int16)).max() <= 1
    assert (ours8 == ff_bgr8).mean() > 0.99  # (float32 vs float64 only at exact .5 roundings)


# -- each family through the registry and its loader -----------------------------------------------------------

@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_each_enhancer_restores_a_flat_face_to_the_known_colour(pool: ModelPool, name: str) -> None:
    size, template, weighted = FAMILIES[name]
    loaded = pool.load("restorer", name, True)
    assert loaded.choice.record.name == name and loaded.choice.record.template == template
    assert getattr(loaded.choice.record, "family", None) == FAMILY_OF.get(name, "gpen")
    adapter = loaded.adapter
    assert isinstance(adapter, OnnxRestorerAdapter)
    restorer = adapter.restorer
    assert (restorer.size, restorer.template, restorer.takes_weight) == (size, template, weighted)
    crop, points = flat_face(template, size)
    result = restorer.restore(crop, points)
    np.testing.assert_allclose(result.matrix, al.estimate_alignment(points, template, size))
    full = result.coverage == 1.0
    assert full.mean() > 0.2 and (result.coverage == 0.0).any()
    # (R clips at 1, G halves, B flips: a BGR/RGB mix-up or a missing clip would show)
    np.testing.assert_allclose(result.image[full], np.broadcast_to(expected_flat(0.5 if weighted else None),
                                                                   result.image[full].shape), atol=2e-6)


def test_the_weight_changes_the_output_and_the_cache_key_only_for_codeformer(pool: ModelPool) -> None:
    crop, points = flat_face("ffhq_512", 512)
    codeformer = pool.load("restorer", "codeformer", True).adapter
    gfpgan = pool.load("restorer", "gfpgan_1.4", True).adapter
    assert isinstance(codeformer, OnnxRestorerAdapter) and isinstance(gfpgan, OnnxRestorerAdapter)
    images = {}
    for weight in (0.2, 0.8):
        weighted = codeformer.with_weight(weight)
        assert weighted.restorer is codeformer.restorer  # one loaded file serves every weight
        assert weighted.model_id == f"{codeformer.file_id}:weight={weight:g}"
        result = weighted.restorer.restore(crop, points, weighted.weight)
        full = result.coverage == 1.0
        np.testing.assert_allclose(result.image[full], np.broadcast_to(expected_flat(weight),
                                                                       result.image[full].shape), atol=2e-6)
        images[weight] = result.image[full]
    # + 0.5 * 0.6 in [-1, 1] is + 0.15 in [0, 1] on G and B (R stays clipped at 1)
    np.testing.assert_allclose((images[0.8] - images[0.2]).astype(np.float64).mean(0), (0.0, 0.15, 0.15), atol=1e-5)
    assert gfpgan.with_weight(0.2) is gfpgan and gfpgan.model_id == gfpgan.file_id
    plain = gfpgan.restorer.restore(crop, points, 0.2).image
    np.testing.assert_array_equal(plain, gfpgan.restorer.restore(crop, points, 0.8).image)

    def stage_ids(restorer: str, weight: float) -> tuple[str, ...]:
        params = SessionParams(mode="restore", restorer=restorer, restore_weight=weight, allow_unverified=True)
        stage, _ = choose_stage(pool, params)
        return stage.model_ids

    assert stage_ids("codeformer", 0.2) != stage_ids("codeformer", 0.8)
    assert any("weight=0.2" in i for i in stage_ids("codeformer", 0.2))
    for name in ("gfpgan_1.4", "gpen_bfr_512", "restoreformer_plus_plus"):
        assert stage_ids(name, 0.2) == stage_ids(name, 0.8)


def test_an_optional_weight_input_loads_and_an_unfillable_input_is_refused(tmp_path: Path) -> None:
    # a GPEN-style file that also has a float 'weight' (the loader must not fail; the weight is fed)
    gpen_weighted = OnnxRestorer(make_enhancer(tmp_path / "gpen_w.onnx", 256, weight="float"), "cpu", size=256)
    assert gpen_weighted.takes_weight and gpen_weighted.weight_shape == (1,)
    batch = np.zeros((1, 3, 256, 256), np.float32)
    np.testing.assert_allclose(gpen_weighted.run(batch, 0.9) - gpen_weighted.run(batch, 0.5), WEIGHT_GAIN * 0.4,
                               atol=1e-6)
    # a weight declared (1, 1) gets that shape
    square = OnnxRestorer(make_enhancer(tmp_path / "cf_11.onnx", 256, weight="double", weight_shape=(1, 1)), "cpu",
                          size=256)
    assert square.weight_shape == (1, 1)
    np.testing.assert_allclose(square.run(batch, 1.0), WEIGHT_GAIN * 0.5, atol=1e-6)
    # an input nobody can fill: one line naming the file and the input
    noisy = make_enhancer(tmp_path / "noisy.onnx", 256, weight="double", extra="noise")
    with pytest.raises(OnnxModelError) as error:
        OnnxRestorer(noisy, "cpu", size=256)
    message = str(error.value)
    assert "\n" not in message and str(noisy) in message and "'noise'" in message and "cannot be filled" in message


# -- the listing -------------------------------------------------------------------------------------------------

def _registry_with(tmp_path: Path, entries: list[dict[str, object]]) -> Path:
    path = tmp_path / "registry.json"
    path.write_text(json.dumps({"schema": 1, "models": entries}), encoding="utf-8")
    return path


def test_the_listing_shows_every_state_with_licence_and_source(tmp_path: Path) -> None:
    shipped = json.loads(default_registry_path().read_text(encoding="utf-8"))["models"]
    base = next(e for e in shipped if e["name"] == "codeformer")
    folder = tmp_path / "models"
    for stem in ("cf_verified", "cf_mismatch", "cf_nohash"):
        make_enhancer(folder / f"{stem}.onnx", 64, weight="double")
    digest = sha256_file(folder / "cf_verified.onnx")
    source = "test-built file (tests/test_enhancer_families.py)"
    entries = [{**base, "name": "cf_verified", "file": "cf_verified.onnx", "sha256": digest, "source": source},
               {**base, "name": "cf_mismatch", "file": "cf_mismatch.onnx", "sha256": "0" * 64, "source": source},
               {**base, "name": "cf_nohash", "file": "cf_nohash.onnx", "sha256": None, "source": None},
               {**base, "name": "cf_missing", "file": "cf_missing.onnx"}]
    statuses = scan(folder, load_records(_registry_with(tmp_path, entries)))
    assert [s.state for s in statuses] == ["verified", "hash-mismatch", "no-hash", "missing"]
    text = format_models(statuses)
    rows = {line.split()[0]: line for line in text.splitlines() if line.startswith("    cf_")}
    assert rows["cf_verified"].split()[2] == "verified" and str(folder / "cf_verified.onnx") in rows["cf_verified"]
    assert "hash mismatch" in rows["cf_mismatch"]
    assert "found, no published sha256" in rows["cf_nohash"]
    assert "missing" in rows["cf_missing"] and str(folder / "cf_missing.onnx") in rows["cf_missing"]
    assert f"sha256: {digest} from {source}" in text
    assert "sha256: no published sha256 (FaceFusion's .hash files give CRC32 only)" in text
    assert f"licence: {base['licence']}" in text
    assert text.splitlines()[0] == "restorer:" and "  [codeformer]" in text
    assert text.splitlines()[-1] == "4 models: 1 found, no published sha256, 1 hash mismatch, 1 missing, 1 verified"


def test_facebridge_models_names_every_enhancer_family(family_dir: Path, tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "facebridge", "models", "--models-dir", str(family_dir),
                             "--cache-dir", str(tmp_path / "cache")], check=False, capture_output=True, text=True, timeout=120,
                            stdin=subprocess.DEVNULL, env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    text = result.stdout
    for family in ("codeformer", "gfpgan", "restoreformer", "gpen", "enhancer"):
        assert f"  [{family}]" in text, family
    rows = {line.split()[0]: line for line in text.splitlines() if line.startswith("    ") and line.split()}
    records = {r.name: r for r in load_records()}
    for name in FAMILIES:  # synthetic files: a published sha256 cannot match, none published: found
        state = "hash mismatch" if records[name].sha256 else "found, no published sha256"
        assert state in rows[name], rows[name]
    assert "missing" in rows["GPEN-BFR-512"] and "embedded" in rows["classical-enhancer"]


# -- end to end ----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def codeformer_server(dlib_models, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from inference_server.server.app import ServerConfig, start_server

    folder = tmp_path_factory.mktemp("codeformer-models")
    identity = folder / "codeformer.onnx"
    # identity on the image plus the weight term: weight 0.5 gives the face back, others shift it
    graph_path = make_enhancer(identity, 512, weight="double")
    model = onnx.load(str(graph_path))
    for init in model.graph.initializer:
        if init.name == "gain":
            init.CopyFrom(numpy_helper.from_array(np.ones((1, 3, 1, 1), np.float32), "gain"))
    onnx.save(model, str(identity))
    running = start_server(ServerConfig(port=0, device="cpu", cache_dir=tmp_path_factory.mktemp("cache"),
                                        models_dir=folder, allow_roots=(tmp_path_factory.getbasetemp(),),
                                        allow_unverified=True), models=dlib_models)
    yield f"127.0.0.1:{running.port}"
    running.stop(grace=2.0)


def test_codeformer_restores_through_the_server_with_the_sessions_weight(
        codeformer_server: str, faces_dir: Path, dlib_models, tmp_path: Path) -> None:
    from support import make_plate, read_exr, same_bits

    from facebridge.client.grpc_client import FaceBridgeClient, FrameJob

    plate, zone = make_plate(faces_dir / "fr_alex_lacamoire.png", tmp_path / "plate.exr", dlib_models)
    before, _ = read_exr(plate)
    renders, ids = {}, {}
    for weight in (0.2, 0.8):
        params = RenderParams(mode="restore", restorer="codeformer", restore_weight=weight, allow_unverified=True,
                              stabilise=0.0, colour_match="none")
        out = tmp_path / f"w{weight}.exr"
        with FaceBridgeClient(codeformer_server, timeout=120.0) as client:
            session = client.open_session([], shot=f"cf-{weight}", params=params)
            (outcome,) = client.process(session.session_id, [FrameJob(1, str(plate), str(out))], use_paths=True)
        assert outcome.status == "ok", outcome.message
        ids[weight] = [i for i in session.model_ids if i.startswith("codeformer")]
        renders[weight], spec = read_exr(out)
        assert "codeformer" in spec.get_string_attribute("facebridge:models")
        assert any("restore_weight" in n for n in session.notes), session.notes
    assert ids[0.2] != ids[0.8] and "weight=0.2" in ids[0.2][0] and "weight=0.8" in ids[0.8][0]
    for weight, after in renders.items():
        assert same_bits(before[~zone], after[~zone]).all(), f"weight {weight}: pixels outside the face changed"
    changed = ~same_bits(renders[0.2], renders[0.8]).all(axis=2)
    assert isinstance(changed, np.ndarray) and changed.any() and not changed[~zone].any()
    # the weight term lifts every channel of the restored face: 0.8 is brighter than 0.2 wherever they differ
    lift = renders[0.8][changed][:, :3] - renders[0.2][changed][:, :3]
    assert (lift > 0).mean() > 0.99 and float(np.median(lift)) > 0.01
