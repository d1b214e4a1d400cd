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


def save_model(graph: onnx.GraphProto, path: Path) -> Path:
    """Write ``graph`` as a checked ONNX model (opset OPSET, IR IR_VERSION) to ``path``; the path."""
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
    return save_model(graph, folder / name)


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
    return save_model(graph, folder / name)


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
    return save_model(graph, folder / (name or f"gpen_bfr_{size}_{kind}.onnx"))


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
    return save_model(graph, folder / name)


def write_garbage(folder: Path, name: str = "broken.onnx") -> Path:
    """A file with an ``.onnx`` name that is not an ONNX model."""
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not an onnx model\n" * 4)
    return path


# -- face detectors and landmarkers (FaceFusion formats) ---------------------------------------------------

DETECTOR_SIZE = 640
ANCHOR_STRIDES = (8, 16, 32)
YOLO_CANDIDATES = 8400  # 80^2 + 40^2 + 20^2 cells of a 640 px yolov8 head


def make_constant_model(path: Path, input_shape: list[int], outputs: list[tuple[str, np.ndarray]],
                        input_name: str = "input") -> Path:
    """A model whose outputs are the given constants (plus ``0 * mean(input)``, so the input is used)."""
    nodes = [helper.make_node("ReduceMean", [input_name], ["input_mean"], keepdims=0),
             helper.make_node("Mul", ["input_mean", "zero"], ["input_zero"])]
    initializers = [numpy_helper.from_array(np.zeros((), np.float32), "zero")]
    for name, value in outputs:
        initializers.append(numpy_helper.from_array(np.asarray(value, np.float32), f"{name}_value"))
        nodes.append(helper.make_node("Add", [f"{name}_value", "input_zero"], [name]))
    graph = helper.make_graph(nodes, path.stem.replace(".", "_"), [_input(input_name, input_shape)],
                              [_input(name, list(np.shape(value))) for name, value in outputs],
                              initializer=initializers)
    return save_model(graph, path)


def anchor_detector_outputs(faces: list[tuple[np.ndarray, np.ndarray, float, int]],
                            size: int = DETECTOR_SIZE) -> list[np.ndarray]:
    """The nine retinaface/scrfd outputs that encode ``faces``: each ``(box (4,), points (5, 2), score, stride)``
    in model-input pixels, put on the first anchor of the cell nearest the box centre at that stride (the
    inverse of FaceFusion's decoding: anchor = (column, row) x stride, distances and offsets in stride units)."""
    scores = [np.zeros(((size // s) ** 2 * 2, 1), np.float32) for s in ANCHOR_STRIDES]
    boxes = [np.zeros(((size // s) ** 2 * 2, 4), np.float32) for s in ANCHOR_STRIDES]
    points = [np.zeros(((size // s) ** 2 * 2, 10), np.float32) for s in ANCHOR_STRIDES]
    for box, kps, score, stride in faces:
        level = ANCHOR_STRIDES.index(stride)
        cols = size // stride
        col = round((box[0] + box[2]) / 2 / stride)
        row = round((box[1] + box[3]) / 2 / stride)
        index = (row * cols + col) * 2
        ax, ay = col * stride, row * stride
        scores[level][index, 0] = score
        boxes[level][index] = np.array([ax - box[0], ay - box[1], box[2] - ax, box[3] - ay]) / stride
        points[level][index] = ((np.asarray(kps) - [ax, ay]) / stride).reshape(10)
    return scores + boxes + points


def make_anchor_detector(folder: Path, faces: list[tuple[np.ndarray, np.ndarray, float, int]],
                         name: str = "scrfd_2.5g.onnx") -> Path:
    """retinaface_10g / scrfd_2.5g stand-in: ``input (1,3,640,640)`` -> nine constant outputs encoding ``faces``
    (see :func:`anchor_detector_outputs`)."""
    names = [f"{kind}_{s}" for kind in ("score", "bbox", "kps") for s in ANCHOR_STRIDES]
    return make_constant_model(folder / name, [1, 3, DETECTOR_SIZE, DETECTOR_SIZE],
                               list(zip(names, anchor_detector_outputs(faces))))


def yolo_detector_output(faces: list[tuple[np.ndarray, np.ndarray, float, int]]) -> np.ndarray:
    """``(1, 20, 8400)`` yoloface output with ``faces`` (``(box, points (5, 2), score, candidate index)`` in input
    pixels) as centre/size boxes, scores and (x, y, 1.0) points; every other candidate scores 0."""
    out = np.zeros((1, 20, YOLO_CANDIDATES), np.float32)
    for box, kps, score, index in faces:
        x0, y0, x1, y1 = box
        out[0, :5, index] = [(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0, score]
        out[0, 5:, index] = np.column_stack([np.asarray(kps), np.ones(5)]).reshape(15)
    return out


def make_yolo_detector(folder: Path, faces: list[tuple[np.ndarray, np.ndarray, float, int]],
                       name: str = "yoloface_8n.onnx") -> Path:
    """yoloface_8n stand-in: ``input (1,3,640,640)`` -> ``output (1,20,8400)`` encoding ``faces``."""
    return make_constant_model(folder / name, [1, 3, DETECTOR_SIZE, DETECTOR_SIZE],
                               [("output0", yolo_detector_output(faces))])


def make_2dfan4(folder: Path, heatmap_points: np.ndarray, peak: float, name: str = "2dfan4.onnx") -> Path:
    """2dfan4 stand-in: ``input (1,3,256,256)`` -> ``landmarks (1,68,3)`` = ``heatmap_points`` ((68, 2), 64 px
    heatmap units) with a third column of ones, and ``heatmaps (1,68,64,64)`` whose every map peaks at ``peak``."""
    landmarks = np.concatenate([np.asarray(heatmap_points, np.float32).reshape(1, 68, 2),
                                np.ones((1, 68, 1), np.float32)], axis=2)
    heatmaps = np.zeros((1, 68, 64, 64), np.float32)
    heatmaps[0, :, 10, 20] = peak
    heatmaps[0, :, 11, 20] = peak / 2
    return make_constant_model(folder / name, [1, 3, 256, 256], [("landmarks", landmarks), ("heatmaps", heatmaps)])


def make_peppa_wutz(folder: Path, heatmap_points: np.ndarray, confidence: float,
                    name: str = "peppa_wutz.onnx") -> Path:
    """peppa_wutz stand-in: ``input (1,3,256,256)`` -> ``output (1,204)``: (x, y, ``confidence``) per point, x, y
    in 64 px units."""
    rows = np.column_stack([np.asarray(heatmap_points, np.float32).reshape(68, 2), np.full(68, confidence)])
    return make_constant_model(folder / name, [1, 3, 256, 256], [("output", rows.reshape(1, 204))])
