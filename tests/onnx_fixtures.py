"""Small synthetic ONNX models with the input/output names and shapes of FaceFusion's model files.

Each ``make_*`` function writes one ``.onnx`` file into the given folder and returns its path. The
models compute simple, known functions so tests can check the pre/post-processing around them:

- :func:`make_inswapper`: output = ``target`` (pass-through); ``emap`` is the last initializer and is
  used (times zero) so that onnxruntime keeps it.
- :func:`make_arcface`: 8x8 average pooling of ``input`` then a fixed linear projection to 512.
- :func:`make_restorer`: pass-through, or a constant output value.
- :func:`make_bisenet`: logits that depend only on position: a 4x4 grid of 128 px blocks whose labels
  are :data:`BISENET_BLOCK_LABELS`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 9
ARCFACE_POOL = 8
BISENET_BLOCK = 128
BISENET_BLOCK_LABELS = np.array([
    [0, 17, 17, 0],
    [2, 4, 5, 3],
    [1, 10, 10, 1],
    [14, 12, 11, 13],
], dtype=np.int64)


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="facebridge-tests")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def _input(name: str, shape: list[int]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _zero_of(source: str, prefix: str) -> list[onnx.NodeProto]:
    """Nodes computing ``{prefix}_zero`` = mean(source) * 0, shape (1, ..., 1): ties an input in."""
    return [
        helper.make_node("ReduceMean", [source], [f"{prefix}_mean"], keepdims=1),
        helper.make_node("Mul", [f"{prefix}_mean", "zero"], [f"{prefix}_zero"]),
    ]


def inswapper_emap() -> np.ndarray:
    """The fixture's ``(512, 512)`` float32 emap (fixed seed)."""
    return np.random.default_rng(128).normal(0.0, 0.05, (512, 512)).astype(np.float32)


def make_inswapper(folder: Path, name: str = "inswapper_128.onnx", emap: np.ndarray | None = None) -> Path:
    """Pass-through inswapper: ``target (1,3,128,128)``, ``source (1,512)`` -> ``output`` = target."""
    emap = inswapper_emap() if emap is None else np.asarray(emap, np.float32)
    nodes = [
        helper.make_node("MatMul", ["source", "emap"], ["mapped"]),
        *_zero_of("mapped", "source"),
        helper.make_node("Add", ["target", "source_zero"], ["output"]),
    ]
    initializers = [numpy_helper.from_array(np.zeros((), np.float32), "zero"),
                    numpy_helper.from_array(emap, "emap")]  # emap last, as in the real file
    graph = helper.make_graph(nodes, "inswapper_passthrough",
                              [_input("target", [1, 3, 128, 128]), _input("source", [1, 512])],
                              [_input("output", [1, 3, 128, 128])], initializer=initializers)
    return _save(graph, folder / name)


def arcface_projection() -> np.ndarray:
    """``(588, 512)`` float32 projection of the 3 x 14 x 14 pooled pixels (fixed seed)."""
    return np.random.default_rng(112).normal(0.0, 0.1, (3 * 14 * 14, 512)).astype(np.float32)


def arcface_reference(batch: np.ndarray) -> np.ndarray:
    """What :func:`make_arcface`'s model computes for a ``(1, 3, 112, 112)`` input, as ``(512,)``."""
    pooled = np.asarray(batch, np.float64).reshape(1, 3, 14, ARCFACE_POOL, 14, ARCFACE_POOL).mean(axis=(3, 5))
    return (pooled.reshape(1, -1) @ arcface_projection().astype(np.float64)).reshape(-1)


def make_arcface(folder: Path, name: str = "arcface_w600k_r50.onnx") -> Path:
    """ArcFace stand-in: ``input (1,3,112,112)`` -> ``output (1,512)`` = projection of 8x8 means."""
    nodes = [
        helper.make_node("AveragePool", ["input"], ["pooled"], kernel_shape=[ARCFACE_POOL, ARCFACE_POOL],
                         strides=[ARCFACE_POOL, ARCFACE_POOL]),
        helper.make_node("Reshape", ["pooled", "flat_shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "projection"], ["output"]),
    ]
    initializers = [numpy_helper.from_array(np.array([1, 3 * 14 * 14], np.int64), "flat_shape"),
                    numpy_helper.from_array(arcface_projection(), "projection")]
    graph = helper.make_graph(nodes, "arcface_pool_projection", [_input("input", [1, 3, 112, 112])],
                              [_input("output", [1, 512])], initializer=initializers)
    return _save(graph, folder / name)


def make_restorer(folder: Path, size: int, constant: float | None = None, input_name: str = "input",
                  name: str | None = None) -> Path:
    """GPEN stand-in ``input (1,3,S,S)`` -> ``output``: the input, or ``constant`` everywhere."""
    shape = [1, 3, size, size]
    if constant is None:
        initializers: list[onnx.TensorProto] = []
        nodes = [helper.make_node("Identity", [input_name], ["output"])]
        kind = "passthrough"
    else:
        initializers = [numpy_helper.from_array(np.zeros((), np.float32), "zero"),
                        numpy_helper.from_array(np.array(constant, np.float32), "value")]
        nodes = [helper.make_node("Mul", [input_name, "zero"], ["zeros"]),
                 helper.make_node("Add", ["zeros", "value"], ["output"])]
        kind = "constant"
    graph = helper.make_graph(nodes, f"gpen_{kind}_{size}", [_input(input_name, shape)], [_input("output", shape)],
                              initializer=initializers)
    return _save(graph, folder / (name or f"gpen_bfr_{size}_{kind}.onnx"))


def bisenet_block_logits() -> np.ndarray:
    """``(1, 19, 4, 1, 4, 1)`` float32 one-hot logits of :data:`BISENET_BLOCK_LABELS`."""
    logits = np.zeros((1, 19, 4, 1, 4, 1), np.float32)
    for by in range(4):
        for bx in range(4):
            logits[0, BISENET_BLOCK_LABELS[by, bx], by, 0, bx, 0] = 5.0
    return logits


def make_bisenet(folder: Path, name: str = "bisenet_resnet_34.onnx") -> Path:
    """Parser stand-in: ``input (1,3,512,512)`` -> ``output (1,19,512,512)`` block-wise known labels."""
    nodes = [
        helper.make_node("Expand", ["block_logits", "expand_shape"], ["expanded"]),
        helper.make_node("Reshape", ["expanded", "out_shape"], ["grid"]),
        *_zero_of("input", "input"),
        helper.make_node("Add", ["grid", "input_zero"], ["output"]),
    ]
    initializers = [
        numpy_helper.from_array(np.zeros((), np.float32), "zero"),
        numpy_helper.from_array(bisenet_block_logits(), "block_logits"),
        numpy_helper.from_array(np.array([1, 19, 4, BISENET_BLOCK, 4, BISENET_BLOCK], np.int64), "expand_shape"),
        numpy_helper.from_array(np.array([1, 19, 512, 512], np.int64), "out_shape"),
    ]
    graph = helper.make_graph(nodes, "bisenet_blocks", [_input("input", [1, 3, 512, 512])],
                              [_input("output", [1, 19, 512, 512])], initializer=initializers)
    return _save(graph, folder / name)


def write_garbage(folder: Path, name: str = "broken.onnx") -> Path:
    """A file with an ``.onnx`` name that is not an ONNX model."""
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not an onnx model\n" * 4)
    return path
