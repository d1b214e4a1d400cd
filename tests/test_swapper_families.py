"""Swapper families in FaceFusion's formats (hyperswap, simswap, ghost, hififace, blendswap, uniface, inswapper)
and pixel boost, on synthetic ONNX files with the real files' input names and shapes built here.

Each synthetic swapper computes a known per-pixel function of its inputs, ``output = target * GAIN + OFFSET +
v(source)`` (OFFSET differs per channel, so a colour-order slip shows), where ``v`` is a fixed linear map of an
embedding source or the channel means of an image source. The expected results are written here from
FaceFusion 3.8.1's processing (``face_swapper/core.py``): the target as ``(x - mean) / std`` in RGB, the
output de-normalised only for ghost, hififace, hyperswap and uniface, then clipped; sources as
``embedding_norm`` (hyperswap), ``crossface(raw)`` (ghost) or its normalisation (simswap, hififace), or the
source face itself aligned (blendswap: arcface_112_v2 at 112 px; uniface: ffhq_512 at 256 px).
Source faces come from real photos (../shared/data/faces).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import onnx_fixtures as fx
import pytest
from onnx import TensorProto, helper, numpy_helper
from support import make_plate, read_exr, same_bits

from facebridge.client.grpc_client import ClientError, FaceBridgeClient, FrameJob
from facebridge.settings import RenderParams
from inference_server.faces.sources import SourceFace, prepare_sources
from inference_server.models import registry as reg
from inference_server.models.alignment import (
    estimate_alignment,
    points5_from_68,
    warp_to_model,
)
from inference_server.models.onnx_embedder import ArcfaceEmbedder
from inference_server.models.onnx_swapper import read_emap
from inference_server.models.pool import ModelPool
from inference_server.models.swappers import (
    EmbeddingConverter,
    OnnxSwapperModel,
    SwapperAdapter,
    boost_factor,
    contract_for,
    explode_tiles,
    implode_tiles,
)
from inference_server.server.app import ServerConfig, start_server

GAIN = 0.9
OFFSET = np.array([0.05, -0.03, 0.02])
IMAGE_GAIN = 0.25
SHIPPED = {e["name"]: e for e in json.loads(reg.default_registry_path().read_text(encoding="utf-8"))["models"]}

# FaceFusion 3.8.1's model set, written out here: (template, size, mean, std, de-normalised output, source)
FACEFUSION = {
    "inswapper_128": ("arcface_128", 128, (0, 0, 0), (1, 1, 1), False, "emap"),
    "hyperswap_1a_256": ("arcface_128", 256, (.5, .5, .5), (.5, .5, .5), True, "embedding_norm"),
    "hyperswap_1b_256": ("arcface_128", 256, (.5, .5, .5), (.5, .5, .5), True, "embedding_norm"),
    "hyperswap_1c_256": ("arcface_128", 256, (.5, .5, .5), (.5, .5, .5), True, "embedding_norm"),
    "ghost_1_256": ("arcface_112_v1", 256, (.5, .5, .5), (.5, .5, .5), True, "converted"),
    "ghost_2_256": ("arcface_112_v1", 256, (.5, .5, .5), (.5, .5, .5), True, "converted"),
    "ghost_3_256": ("arcface_112_v1", 256, (.5, .5, .5), (.5, .5, .5), True, "converted"),
    "hififace_unofficial_256": ("mtcnn_512", 256, (.5, .5, .5), (.5, .5, .5), True, "converted_norm"),
    "simswap_256": ("arcface_112_v1", 256, (.485, .456, .406), (.229, .224, .225), False, "converted_norm"),
    "simswap_unofficial_512": ("arcface_112_v1", 512, (0, 0, 0), (1, 1, 1), False, "converted_norm"),
    "blendswap_256": ("ffhq_512", 256, (0, 0, 0), (1, 1, 1), False, "image"),
    "uniface_256": ("ffhq_512", 256, (.5, .5, .5), (.5, .5, .5), True, "image"),
}
IMAGE_SOURCES = {"blendswap_256": ("arcface_112_v2", 112), "uniface_256": ("ffhq_512", 256)}


# -- synthetic files ------------------------------------------------------------------------------

def source_map() -> np.ndarray:
    """``(512, 3)`` float32: the synthetic swappers' map of an embedding source to three channel offsets."""
    return np.random.default_rng(3).normal(0.0, 0.02, (512, 3)).astype(np.float32)


def converter_matrix() -> np.ndarray:
    """``(512, 512)`` float32 of the synthetic crossface converter (``output = input @ M``)."""
    return np.random.default_rng(5).normal(0.0, 0.05, (512, 512)).astype(np.float32)


def make_swapper(path: Path, size: int, source_shape: list[int], batch: int | str = 1,
                 emap: np.ndarray | None = None) -> Path:
    """``target (B,3,S,S)``, ``source`` -> ``output = target * GAIN + OFFSET + v(source)``."""
    tensors = [numpy_helper.from_array(np.float32(GAIN), "gain"),
               numpy_helper.from_array(OFFSET.astype(np.float32).reshape(1, 3, 1, 1), "offset")]
    if len(source_shape) == 2:
        tensors += [numpy_helper.from_array(source_map(), "map"),
                    numpy_helper.from_array(np.array([-1, 3, 1, 1], np.int64), "shape")]
        nodes = [helper.make_node("MatMul", ["source", "map"], ["mapped"]),
                 helper.make_node("Reshape", ["mapped", "shape"], ["v"])]
    else:
        tensors += [numpy_helper.from_array(np.float32(IMAGE_GAIN), "image_gain")]
        nodes = [helper.make_node("ReduceMean", ["source"], ["means"], axes=[2, 3], keepdims=1),
                 helper.make_node("Mul", ["means", "image_gain"], ["v"])]
    nodes += [helper.make_node("Mul", ["target", "gain"], ["scaled"]),
              helper.make_node("Add", ["scaled", "offset"], ["shifted"]),
              helper.make_node("Add", ["shifted", "v"], ["output"])]
    if emap is not None:  # inswapper keeps its emap as the last initializer
        tensors.append(numpy_helper.from_array(emap, "emap"))
        nodes += [helper.make_node("ReduceSum", ["emap"], ["emap_sum"], keepdims=0),
                  helper.make_node("Mul", ["emap_sum", "zero"], ["emap_zero"]),
                  helper.make_node("Add", ["output", "emap_zero"], ["final"])]
        tensors.insert(0, numpy_helper.from_array(np.float32(0.0), "zero"))
    out_name = "final" if emap is not None else "output"
    graph = helper.make_graph(
        nodes, path.stem,
        [helper.make_tensor_value_info("target", TensorProto.FLOAT, [batch, 3, size, size]),
         helper.make_tensor_value_info("source", TensorProto.FLOAT, [batch, *source_shape[1:]])],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, [batch, 3, size, size])], initializer=tensors)
    return fx.save_model(graph, path)


def make_converter(path: Path) -> Path:
    """crossface stand-in: ``input (1,512)`` -> ``output = input @ M``."""
    graph = helper.make_graph([helper.make_node("MatMul", ["input", "m"], ["output"])], path.stem,
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 512])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 512])],
                              initializer=[numpy_helper.from_array(converter_matrix(), "m")])
    return fx.save_model(graph, path)


def write_family_files(folder: Path, names: list[str], batch: int | str = 1) -> None:
    """Synthetic files under the registry's file names of ``names``, their converters and the arcface."""
    fx.make_arcface(folder)
    for name in ("crossface_ghost", "crossface_simswap", "crossface_hififace"):
        make_converter(folder / f"{name}.onnx")
    for name in names:
        entry = SHIPPED[name]
        emap = fx.inswapper_emap() if entry["family"] == "inswapper" else None
        make_swapper(folder / entry["file"], entry["size"], entry["inputs"]["source"], batch, emap)


# -- the expected results, from FaceFusion's processing ------------------------------------------

def expected_output(aligned: np.ndarray, name: str, v: np.ndarray) -> np.ndarray:
    """What FaceFusion computes around the synthetic graph for an aligned RGB [0, 1] target."""
    _, _, mean, std, denormalise, _ = FACEFUSION[name]
    t = (np.asarray(aligned, np.float64) - np.array(mean)) / np.array(std)
    out = t * np.float32(GAIN) + OFFSET + np.asarray(v, np.float64).reshape(1, 1, 3)
    if denormalise:
        out = out * np.array(std) + np.array(mean)
    return np.clip(out, 0.0, 1.0)


def expected_source(name: str, sources: list[SourceFace], embedder: ArcfaceEmbedder, emap: np.ndarray
                    ) -> np.ndarray:
    """FaceFusion's source input for ``sources`` (averaged as its get_average_face does)."""
    kind = FACEFUSION[name][5]
    if kind == "image":
        template, size = IMAGE_SOURCES[name]
        first = sources[0]
        matrix = estimate_alignment(points5_from_68(first.landmarks), template, size)
        return warp_to_model(first.image, matrix, size).transpose(2, 0, 1)[None]
    raws = [embedder.embed(s.image, points5_from_68(s.landmarks)).astype(np.float64) for s in sources]
    raw = np.mean(raws, axis=0)
    if kind == "emap":
        return (raw @ emap.astype(np.float64) / np.linalg.norm(raw))[None]
    if kind == "embedding_norm":
        return np.mean([r / np.linalg.norm(r) for r in raws], axis=0)[None]
    converted = raw.astype(np.float32) @ converter_matrix().astype(np.float64)
    return (converted if kind == "converted" else converted / np.linalg.norm(converted))[None]


def v_of(source_input: np.ndarray) -> np.ndarray:
    if source_input.ndim == 2:
        return np.asarray(source_input, np.float64) @ source_map().astype(np.float64)
    return np.asarray(source_input, np.float64).mean(axis=(2, 3)) * np.float32(IMAGE_GAIN)


# -- fixtures -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sources(faces_dir: Path, dlib_models) -> list[SourceFace]:
    images = []
    for name in ("fr_alex_lacamoire.png", "fr_biden2.jpg"):
        bgr = cv2.imread(str(faces_dir / name), cv2.IMREAD_COLOR)
        assert bgr is not None
        images.append((name, np.ascontiguousarray(bgr[:, :, ::-1])))
    return prepare_sources(images, dlib_models)


@pytest.fixture(scope="module")
def target(faces_dir: Path, dlib_models) -> tuple[np.ndarray, np.ndarray]:
    """A real face crop (RGB [0, 1]) and its 68 landmarks."""
    bgr = cv2.imread(str(faces_dir / "fr_obama.jpg"), cv2.IMREAD_COLOR)
    assert bgr is not None
    (face,) = prepare_sources([("obama", np.ascontiguousarray(bgr[:, :, ::-1]))], dlib_models)
    return face.image, face.landmarks


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> ModelPool:
    folder = tmp_path_factory.mktemp("swappers")
    write_family_files(folder, list(FACEFUSION))
    return ModelPool(folder, tmp_path_factory.mktemp("cache"), "cpu", allow_unverified=True)


# -- registry -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(FACEFUSION))
def test_registry_records_follow_facefusion(name: str) -> None:
    entry = SHIPPED[name]
    template, size, mean, std, _, kind = FACEFUSION[name]
    contract = contract_for(size, template, entry["normalisation"], denormalise=False, source="emap")
    assert contract.mean + contract.std == pytest.approx(mean + std)
    assert (entry["kind"], entry["template"], entry["size"]) == ("swapper", template, size)
    assert entry["inputs"]["target"] == [1, 3, size, size]
    if kind == "image":
        template, side = IMAGE_SOURCES[name]
        assert entry["inputs"]["source"] == [1, 3, side, side] and not entry.get("requires")
    else:
        assert entry["inputs"]["source"] == [1, 512] and entry["requires"][0] == "arcface_w600k_r50"
    if kind.startswith("converted"):
        assert SHIPPED[entry["requires"][1]]["kind"] == "converter"
    assert entry["sha256"] or "CRC32" in entry["notes"], "a record without a sha256 says why"


# -- known answers through the pool ---------------------------------------------------------------

@pytest.mark.parametrize("name", list(FACEFUSION))
def test_each_family_feeds_and_reads_its_model_as_facefusion_does(
        name: str, pool: ModelPool, sources: list[SourceFace], target: tuple[np.ndarray, np.ndarray]) -> None:
    loaded = pool.load("swapper", name, True)
    adapter = loaded.adapter
    assert isinstance(adapter, SwapperAdapter)
    template, size = FACEFUSION[name][:2]
    assert (adapter.template, adapter.size) == (template, size)
    embedder = pool.load("embedder", "arcface_w600k_r50", True).adapter
    assert isinstance(embedder, ArcfaceEmbedder)
    emap = read_emap(pool.models_dir / SHIPPED["inswapper_128"]["file"])
    vector = adapter.source_vector(sources)  # two photos: one identity
    want = expected_source(name, sources, embedder, emap)
    np.testing.assert_allclose(vector, want, rtol=1e-4, atol=1e-5)
    crop, landmarks = target
    aligned = warp_to_model(crop, estimate_alignment(points5_from_68(landmarks), template, size), size)
    got = adapter.run(aligned, vector)
    assert got.shape == (size, size, 3) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected_output(aligned, name, v_of(want)), atol=2e-5)
    if FACEFUSION[name][5] == "image":  # FaceFusion takes the first source's face for an image source
        assert np.array_equal(adapter.source_vector(sources[:1]), vector)
    else:
        assert not np.allclose(adapter.source_vector(sources[:1]), vector)


def test_a_colour_order_or_normalisation_slip_would_show(sources: list[SourceFace],
                                                         target: tuple[np.ndarray, np.ndarray]) -> None:
    """The known answer separates the contracts: BGR order or another family's mean/std gives another result."""
    crop, landmarks = target
    aligned = warp_to_model(crop, estimate_alignment(points5_from_68(landmarks), "arcface_112_v1", 256), 256)
    v = np.zeros(3)
    right = expected_output(aligned, "simswap_256", v)
    assert np.abs(expected_output(aligned[..., ::-1], "simswap_256", v)[..., ::-1] - right).max() > 0.02
    assert np.abs(expected_output(aligned, "ghost_1_256", v) - right).max() > 0.05


def test_a_converted_family_without_its_converter_is_refused(tmp_path: Path) -> None:
    write_family_files(tmp_path, ["simswap_256"])
    (tmp_path / "crossface_simswap.onnx").unlink()
    pool = ModelPool(tmp_path, tmp_path / "cache", "cpu", allow_unverified=True)
    with pytest.raises(Exception, match="crossface_simswap"):
        pool.load("swapper", "simswap_256", True)


def test_the_embedding_converter_is_applied_as_a_file(tmp_path: Path) -> None:
    converter = EmbeddingConverter(make_converter(tmp_path / "crossface_ghost.onnx"), "cpu")
    x = np.random.default_rng(0).normal(size=(1, 512)).astype(np.float32)
    np.testing.assert_allclose(converter(x), x.astype(np.float64) @ converter_matrix(), rtol=1e-4, atol=1e-5)


# -- pixel boost ----------------------------------------------------------------------------------

def test_interleave_round_trip_is_exact() -> None:
    image = np.random.default_rng(1).random((512, 512, 3)).astype(np.float32)
    tiles = implode_tiles(image, 4)
    assert tiles.shape == (16, 128, 128, 3)
    assert np.array_equal(tiles[1 * 4 + 2], image[1::4, 2::4])  # tile (i, j) = pixels [i::k, j::k]
    assert np.array_equal(explode_tiles(tiles, 4), image)
    assert np.array_equal(explode_tiles(implode_tiles(image, 1), 1), image)


@pytest.mark.parametrize("batch", [1, "N"])
def test_a_boosted_per_pixel_model_equals_its_formula_at_the_work_size(batch: int | str, tmp_path: Path,
                                                                       target: tuple[np.ndarray, np.ndarray]) -> None:
    """hyperswap_1a_256 at 768 px (k = 3, nine interleaved 256 px tiles, one call when the batch is free)."""
    name = "hyperswap_1a_256"
    path = make_swapper(tmp_path / "hs.onnx", 256, [1, 512], batch)
    contract = contract_for(256, "arcface_128", "[-1,1]", denormalise=True, source="embedding_norm")
    model = OnnxSwapperModel(path, "cpu", contract)
    assert model.batched == (batch == "N")
    adapter = SwapperAdapter(model, None, None, "hs").with_pixel_boost(768)
    assert (adapter.size, adapter.model_id) == (768, "hs:boost=768")
    crop, landmarks = target
    aligned = warp_to_model(crop, estimate_alignment(points5_from_68(landmarks), "arcface_128", 768), 768)
    vector = np.random.default_rng(2).normal(size=(1, 512)).astype(np.float32)
    got = adapter.run(aligned, vector)
    np.testing.assert_allclose(got, expected_output(aligned, name, v_of(vector)), atol=2e-5)
    native = adapter.with_pixel_boost(0)
    assert (native.size, native.model_id) == (256, "hs") and adapter.with_pixel_boost(256).model_id == "hs"


@pytest.mark.parametrize("work_size", [300, 128, 1280, -256])
def test_a_pixel_boost_that_is_not_a_multiple_is_refused_in_one_line(work_size: int) -> None:
    with pytest.raises(ValueError) as raised:
        boost_factor(work_size, 256, "hyperswap_1a_256")
    text = str(raised.value)
    assert "\n" not in text and "hyperswap_1a_256" in text and "256 px" in text
    assert boost_factor(0, 256) == 1 and boost_factor(1024, 128) == 8


# -- end to end through the server ---------------------------------------------------------------

@pytest.fixture(scope="module")
def plate(faces_dir: Path, dlib_models, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    return make_plate(faces_dir / "fr_obama.jpg", tmp_path_factory.mktemp("plate") / "plate.exr", dlib_models)


@pytest.fixture(scope="module")
def server(dlib_models, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("models")
    write_family_files(folder, ["hyperswap_1a_256"])
    running = start_server(ServerConfig(port=0, device="cpu", cache_dir=tmp_path_factory.mktemp("cache"),
                                        models_dir=folder, allow_roots=(tmp_path_factory.getbasetemp(),),
                                        allow_unverified=True), models=dlib_models)
    yield f"127.0.0.1:{running.port}"
    running.stop(grace=2.0)


def _render(address: str, plate: Path, out: Path, params: RenderParams, source: Path) -> list[str]:
    with FaceBridgeClient(address, timeout=120.0) as client:
        session = client.open_session([str(source)], shot=f"t-{out.stem}", params=params)
        (outcome,) = client.process(session.session_id, [FrameJob(1, str(plate), str(out))], use_paths=True)
        assert outcome.status == "ok", outcome.message
        return list(session.model_ids)


def test_hyperswap_swaps_through_the_server_and_pixel_boost_enters_its_key(
        server: str, plate: tuple[Path, np.ndarray], faces_dir: Path, tmp_path: Path) -> None:
    path, zone = plate
    source = faces_dir / "fr_alex_lacamoire.png"
    base = RenderParams(swapper="hyperswap_1a_256", allow_unverified=True, stabilise=0.0)
    native_ids = _render(server, path, tmp_path / "native.exr", base, source)
    boosted_ids = _render(server, path, tmp_path / "boosted.exr", replace(base, pixel_boost=512),
                          source)
    assert any(i.startswith("hyperswap_1a_256@") and "boost" not in i for i in native_ids), native_ids
    assert any(i.startswith("hyperswap_1a_256@") and i.endswith(":boost=512") for i in boosted_ids), boosted_ids
    before, _ = read_exr(path)
    native, _ = read_exr(tmp_path / "native.exr")
    boosted, _ = read_exr(tmp_path / "boosted.exr")
    assert same_bits(before[~zone], native[~zone]).all(), "pixels outside the face changed"
    change = np.abs(native[zone][:, :3] - before[zone][:, :3])
    assert np.nanmax(change) > 0.05, "the synthetic hyperswap (offsets per channel) changed nothing"
    # a per-pixel model makes the same change at 512 px, up to the detail the finer work size keeps
    with np.errstate(invalid="ignore"):  # (the plate holds Inf and NaN away from the face)
        face = zone & (np.abs(native[..., :3] - before[..., :3]).max(axis=-1) > 1e-3)
    shift_native = np.nanmean(native[face][:, :3] - before[face][:, :3], axis=0)
    shift_boosted = np.nanmean(boosted[face][:, :3] - before[face][:, :3], axis=0)
    assert np.abs(shift_boosted - shift_native).max() < 0.15 * np.abs(shift_native).max()
    assert not same_bits(boosted[zone], native[zone]).all(), "pixel boost changed nothing"
    with pytest.raises(ClientError, match=r"pixel_boost 300: hyperswap_1a_256 works at 256 px"):
        _render(server, path, tmp_path / "bad.exr", replace(base, pixel_boost=300), source)
