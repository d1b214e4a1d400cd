"""inswapper_128 (FaceFusion / insightface ONNX file): identity swap on a 128 px arcface_128 face.

Model contract (FaceFusion's ``face_swapper``):
    - input ``target``: ``(1, 3, 128, 128)`` float32, RGB in ``[0, 1]`` (8-bit / 255, mean 0, std 1),
      the face aligned on ``arcface_128``;
    - input ``source``: ``(1, 512)`` float32, the source identity mapped through the file's ``emap``;
    - output 0: ``(1, 3, 128, 128)`` RGB in ``[0, 1]`` (clipped).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from .aligned_result import from_nchw, to_nchw
from .onnx_session import OnnxModelError, open_session, run_session

INSWAPPER_SIZE = 128
INSWAPPER_TEMPLATE = "arcface_128"
EMBEDDING_SIZE = 512
INSWAPPER_INPUTS = {"target": (1, 3, INSWAPPER_SIZE, INSWAPPER_SIZE), "source": (1, EMBEDDING_SIZE)}


def read_emap(path: str | Path) -> np.ndarray:
    """The identity-mapping matrix stored as the last graph initializer of an inswapper file.

    Returns:
        ``(512, 512)`` float32.

    Raises:
        OnnxModelError: unreadable file, no initializer, or a last initializer of another shape.
    """
    file = Path(path)
    try:
        model = onnx.load(str(file))
    except Exception as error:
        raise OnnxModelError(f"{file}: not a readable ONNX model ({' '.join(str(error).split())[:200]})") from error
    if not model.graph.initializer:
        raise OnnxModelError(f"{file}: has no graph initializers, so no emap (is it an inswapper model?)")
    emap = numpy_helper.to_array(model.graph.initializer[-1])
    if emap.shape != (EMBEDDING_SIZE, EMBEDDING_SIZE):
        raise OnnxModelError(f"{file}: last initializer has shape {emap.shape}; expected an emap of "
                             f"({EMBEDDING_SIZE}, {EMBEDDING_SIZE})")
    return np.ascontiguousarray(emap, dtype=np.float32)


def prepare_inswapper_source(raw_embedding: np.ndarray, emap: np.ndarray) -> np.ndarray:
    """The ``source`` input of inswapper: ``dot(raw, emap) / |raw|``, as FaceFusion computes it.

    Insightface's reference code instead maps the *normalised* embedding and divides by the norm of
    the product, ``v = dot(raw / |raw|, emap); v / |v|``. The two differ only in scale (``|v|``), since
    ``dot(raw, emap) / |raw| == dot(raw / |raw|, emap)``; this function follows FaceFusion, whose files
    and results it is used with.

    Args:
        raw_embedding: ``(512,)`` (or ``(1, 512)``) raw, un-normalised ArcFace embedding
            (:class:`~.onnx_embedder.ArcfaceEmbedder`).
        emap: ``(512, 512)`` from :func:`read_emap`.

    Returns:
        ``(1, 512)`` float32.
    """
    raw = np.asarray(raw_embedding, dtype=np.float64).reshape(-1)
    if raw.shape != (EMBEDDING_SIZE,):
        raise ValueError(f"expected a {EMBEDDING_SIZE}-d embedding, got shape {np.shape(raw_embedding)}")
    norm = float(np.linalg.norm(raw))
    if not np.isfinite(norm) or norm == 0.0:
        raise ValueError("source embedding is zero or not finite")
    matrix = np.asarray(emap, dtype=np.float64)
    if matrix.shape != (EMBEDDING_SIZE, EMBEDDING_SIZE):
        raise ValueError(f"expected a ({EMBEDDING_SIZE}, {EMBEDDING_SIZE}) emap, got shape {matrix.shape}")
    return (raw @ matrix / norm).astype(np.float32)[None]


def inswapper_preprocess(aligned_rgb: np.ndarray) -> np.ndarray:
    """``(128, 128, 3)`` sRGB [0, 1] RGB -> ``target`` ``(1, 3, 128, 128)`` float32 (mean 0, std 1)."""
    return to_nchw(aligned_rgb)


def inswapper_postprocess(output: np.ndarray) -> np.ndarray:
    """Output ``(1, 3, 128, 128)`` -> ``(128, 128, 3)`` float32 RGB clipped to ``[0, 1]``."""
    return np.clip(from_nchw(output, "inswapper output"), 0.0, 1.0)


class InswapperSwapper:
    """An inswapper_128 ONNX file on a device: :meth:`run` swaps one face aligned on :attr:`template` at
    :attr:`size` px (the model stage aligns and pastes back, :func:`inference_server.pipeline.stages.residual_swap`).

    Args:
        path: the ``.onnx`` file (fp32 or fp16).
        device: ``auto | cpu | cuda[:N] | mps`` (:func:`~.onnx_session.providers_for`).
    """

    size = INSWAPPER_SIZE
    template = INSWAPPER_TEMPLATE

    def __init__(self, path: str | Path, device: str = "auto") -> None:
        self.path = Path(path)
        self.session = open_session(self.path, device, expected_inputs=INSWAPPER_INPUTS)
        self.emap = read_emap(self.path)

    def run(self, aligned: np.ndarray, source: np.ndarray) -> np.ndarray:
        """One aligned ``(128, 128, 3)`` [0, 1] target and a ``(1, 512)`` source vector
        (:func:`prepare_inswapper_source`) -> the swapped ``(128, 128, 3)`` [0, 1] face."""
        output = run_session(self.session, {"target": inswapper_preprocess(aligned), "source": source})[0]
        return inswapper_postprocess(output)
