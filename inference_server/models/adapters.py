"""Loaded models behind the interfaces the model stages use (:mod:`inference_server.pipeline.stages`).

Every image here is display-referred, sRGB-encoded RGB float32 in [0, 1]; landmarks are the 68 iBUG
points in crop pixels. Each adapter has a ``model_id`` (name plus the first 16 hex digits of the file's
sha256, or the algorithm id of an embedded model) that goes into cache keys and output metadata.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from ..faces.sources import SourceFace, source_digest
from ..restore.enhancer import EnhancerSettings, enhance_face
from ..store.memo import Memo
from .aligned_result import Restored, align_crop, paste_back
from .alignment import points5_from_68
from .identity import average_embedding
from .onnx_embedder import ArcfaceEmbedder
from .onnx_parser import BisenetParser
from .onnx_restorer import (
    DEFAULT_WEIGHT,
    OnnxRestorer,
    restore_aligned,
    restorer_postprocess,
    restorer_preprocess,
)
from .onnx_swapper import InswapperSwapper, prepare_inswapper_source

if TYPE_CHECKING:  # (torch is imported only when a PyTorch model is loaded)
    from .torch_runner import TorchImageModel


SOURCE_VECTORS = 256  # source vectors an adapter remembers (2 KiB each), across all sessions


@dataclass
class InswapperAdapter:
    """inswapper_128 with arcface_w600k_r50 source vectors (one per source, remembered by the source's
    content: the adapter is shared by every session, and a closed session's source object may be freed and
    its ``id`` given to another session's source)."""

    swapper: InswapperSwapper
    embedder: ArcfaceEmbedder | None  # None: an unverified set-up without arcface (see ``source_vector``)
    model_id: str
    _vectors: Memo[np.ndarray] = field(default_factory=lambda: Memo(SOURCE_VECTORS), repr=False)

    @property
    def template(self) -> str:
        return self.swapper.template

    @property
    def size(self) -> int:
        return self.swapper.size

    def source_vector(self, sources: SourceFace | Sequence[SourceFace]) -> np.ndarray:
        """(1, 512) float32 ``source`` input of the swapper for one identity: the mean of the sources' raw
        embeddings (:func:`~.identity.average_embedding`, as FaceFusion averages several source photos)."""
        faces = (sources,) if isinstance(sources, SourceFace) else tuple(sources)
        key = "+".join(source_digest(s) for s in faces)
        return self._vectors.get_or_compute(key, lambda: prepare_inswapper_source(
            average_embedding([self._raw_embedding(s) for s in faces]), self.swapper.emap))

    def _raw_embedding(self, source: SourceFace) -> np.ndarray:
        if self.embedder is not None:
            return np.asarray(self.embedder.embed(source.image, points5_from_68(source.landmarks)))
        # stand-in: the dlib identity (128,) repeated to 512 values; allowed only as unverified
        return np.tile(np.asarray(source.embedding, np.float32), 4)

    def run(self, aligned: np.ndarray, source_vector: np.ndarray) -> np.ndarray:
        """(128, 128, 3) aligned target -> (128, 128, 3) swapped, both in [0, 1]."""
        return self.swapper.run(aligned, source_vector)


@dataclass(frozen=True)
class OnnxRestorerAdapter:
    """A FaceFusion-format enhancer ONNX file (gpen_bfr_*, codeformer, gfpgan_*, restoreformer_plus_plus).

    ``file_id`` identifies the file; ``weight`` is the restore weight fed to a model with a ``weight`` input
    (codeformer). Only such a model's ``model_id`` names the weight, so the weight enters cache keys exactly
    where it changes pixels. One loaded file serves every weight: :meth:`with_weight` is a cheap copy.
    """

    restorer: OnnxRestorer
    file_id: str
    weight: float = DEFAULT_WEIGHT

    @property
    def model_id(self) -> str:
        if not self.restorer.takes_weight:
            return self.file_id
        return f"{self.file_id}:weight={self.weight:.6g}"

    def with_weight(self, weight: float) -> OnnxRestorerAdapter:
        """This model with another restore weight (itself when the model takes none)."""
        return replace(self, weight=float(weight)) if self.restorer.takes_weight else self

    def restore(self, crop_model: np.ndarray, landmarks: np.ndarray) -> Restored:
        result = self.restorer.restore(crop_model, points5_from_68(landmarks), self.weight)
        return Restored(result.image, result.coverage)


@dataclass(frozen=True)
class TorchGpenAdapter:
    """An official-format GPEN checkpoint run in PyTorch (fp32, fp16 or bf16 with fp32 fallback)."""

    runner: TorchImageModel
    size: int
    template: str
    model_id: str

    def restore(self, crop_model: np.ndarray, landmarks: np.ndarray) -> Restored:
        fell_back = []

        def run(batch: np.ndarray) -> np.ndarray:
            result = self.runner(batch)
            fell_back.append(bool(result.fell_back))
            return result.output

        result = restore_aligned(crop_model, points5_from_68(landmarks), self.template, self.size, run)
        return Restored(result.image, result.coverage, any(fell_back))

    def restore_many(self, crops: Sequence[np.ndarray], landmarks: Sequence[np.ndarray]) -> list[Restored]:
        """:meth:`restore` of several faces (from one frame or several) in one model call.

        ``crops[i]`` ``(h_i, w_i, 3)`` float32 model space with its ``(68, 2)`` ``landmarks[i]``; each face is
        aligned, all run as one ``(N, 3, S, S)`` batch, each pasted back into its own crop. Equal to calling
        :meth:`restore` on each (up to the model's batch-size rounding); ``fp32_fallback`` per face.
        """
        if len(crops) != len(landmarks):
            raise ValueError(f"{len(crops)} crops but {len(landmarks)} landmark sets")
        if not crops:
            return []
        aligned = []
        for crop_model, points68 in zip(crops, landmarks, strict=True):
            crop, matrix, square = align_crop(crop_model, points5_from_68(points68), self.template, self.size)
            aligned.append((crop, matrix, restorer_preprocess(square)))
        result = self.runner(np.concatenate([a[2] for a in aligned]))
        broken = set(result.fallback_items)
        restored = []
        for i, (crop, matrix, _) in enumerate(aligned):
            pasted = paste_back(crop, restorer_postprocess(result.output[i:i + 1]), matrix)
            restored.append(Restored(pasted.image, pasted.coverage, i in broken))
        return restored


@dataclass(frozen=True)
class EnhancerAdapter:
    """The embedded classical enhancer (no model file): edge-aware denoise plus detail enhancement."""

    settings: EnhancerSettings
    model_id: str

    def restore(self, crop_model: np.ndarray, landmarks: np.ndarray) -> Restored:
        clipped = np.clip(crop_model, 0.0, 1.0).astype(np.float32)
        change = np.asarray(enhance_face(clipped, landmarks, self.settings), np.float32) - clipped
        return Restored(crop_model + change, np.ones(crop_model.shape[:2], np.float32))


@dataclass(frozen=True)
class ParserAdapter:
    """A BiSeNet face-parsing ONNX file: labels of the crop (0 = background, outside its square too)."""

    parser: BisenetParser
    model_id: str

    def labels(self, crop_model: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        parsed = self.parser.parse(np.clip(crop_model, 0.0, 1.0), points5_from_68(landmarks))
        return np.asarray(parsed.labels, np.uint8)
