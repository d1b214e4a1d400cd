"""Aligned face swappers in FaceFusion's ONNX formats, behind one small protocol, with pixel boost.

Facts from FaceFusion 3.8.1 (``facefusion/processors/modules/face_swapper/core.py``: the model set,
``prepare_crop_frame``, ``normalize_crop_frame``, ``prepare_source_embedding``, ``prepare_source_frame``,
``convert_source_embedding``; ``facefusion/processors/pixel_boost.py``; ``facefusion/face_analyser.py``
``get_average_face``). Every swapper file has the inputs ``target`` and ``source`` and its first output is
the swapped face:

- ``target``: ``(1, 3, S, S)`` float32, the face aligned on the model's template at its size S, RGB,
  ``(x - mean) / std`` with ``x`` in ``[0, 1]`` (the record's normalisation: ``[0,1]`` mean 0 / std 1,
  ``[-1,1]`` mean 0.5 / std 0.5, ``imagenet`` the ImageNet mean / std).
- output 0: ``(1, 3, S, S)`` RGB; ``x * std + mean`` only for the families that say so
  (:attr:`SwapperContract.denormalise`: ghost, hififace, hyperswap, uniface; simswap_256 takes ImageNet
  input but its output is used as it comes), then clipped to ``[0, 1]``.
- ``source``, by :attr:`SwapperContract.source` (``raw`` is the arcface_w600k_r50 embedding of the source
  face aligned on arcface_112_v2 at 112 px; several sources are averaged as FaceFusion averages its source
  faces: the mean of the raw embeddings and the mean of the normalised ones):

  - ``emap`` (inswapper): ``dot(mean raw, emap) / |mean raw|`` with the file's emap matrix
    (:func:`~.onnx_swapper.prepare_inswapper_source`), ``(1, 512)``;
  - ``embedding_norm`` (hyperswap): the mean of ``raw / |raw|``, ``(1, 512)``;
  - ``converted`` (ghost): ``crossface(mean raw)``, ``(1, 512)``, not normalised;
  - ``converted_norm`` (simswap, hififace): ``crossface(mean raw)`` normalised to length 1;
  - ``image`` (blendswap, uniface): the first source's face aligned on :attr:`SwapperContract.source_template`
    at :attr:`SwapperContract.source_size` px, RGB ``[0, 1]``, ``(1, 3, s, s)`` (FaceFusion reads the first
    source image for these; an image cannot be averaged).

  ``crossface`` is the family's embedding converter (``crossface_ghost`` / ``_simswap`` / ``_hififace``:
  input ``input`` ``(1, 512)`` -> output 0 ``(1, 512)``). FaceFusion's ``face_swapper_weight`` mixes the
  target's identity in; at its default (0.5) the source is used pure, which is what this module does.

Pixel boost (:func:`implode_tiles` / :func:`explode_tiles`): the face aligned at N = k x S px is split into
k² pixel-interleaved S-px images (tile ``(i, j)`` holds the pixels ``[i::k, j::k]``), each is swapped and
the results are put back in place.

Images here are ``(H, W, 3)`` float32 display-referred sRGB-encoded RGB in ``[0, 1]`` (FaceFusion's 8-bit
BGR frames divided by 255, colour order swapped at its edges as it does).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TypeVar

import numpy as np

from ..faces.sources import SourceFace, source_digest
from ..store.memo import Memo
from .aligned_result import AlignedSwapper, align_crop
from .alignment import TEMPLATES, points5_from_68
from .identity import average_embedding, average_normed_embedding
from .onnx_embedder import ArcfaceEmbedder
from .onnx_session import OnnxModelError, open_session, run_session, session_runner
from .onnx_swapper import prepare_inswapper_source

EMBEDDING_SIZE = 512
MAX_WORK_SIZE = 1024  # the largest pixel boost FaceFusion offers
SOURCE_VECTORS = 256  # source inputs a swapper remembers, across all sessions
SOURCE_KINDS: tuple[str, ...] = ("emap", "embedding_norm", "converted", "converted_norm", "image")
MEAN_STD: Mapping[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = MappingProxyType({
    "[0,1]": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
    "[-1,1]": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
})


Swapper = AlignedSwapper  # (the aligned swap stage's protocol, under the name this module exports)
SwapperT = TypeVar("SwapperT", bound=Swapper)


@dataclass(frozen=True)
class SwapperContract:
    """How one swapper file is fed (see the module docstring).

    Attributes:
        size: the model's square side S in px.
        template: alignment template of the target (a key of :data:`~.alignment.TEMPLATES`).
        mean, std: per RGB channel, applied to the ``[0, 1]`` target.
        denormalise: the output is ``x * std + mean`` before clipping (else used as it comes).
        source: one of :data:`SOURCE_KINDS`.
        source_template, source_size: alignment of an ``image`` source.
    """

    size: int
    template: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    denormalise: bool
    source: str
    source_template: str | None = None
    source_size: int = 0

    def __post_init__(self) -> None:
        if self.source not in SOURCE_KINDS:
            raise ValueError(f"source must be one of {', '.join(SOURCE_KINDS)}, got {self.source!r}")
        if self.template not in TEMPLATES:
            raise ValueError(f"unknown template {self.template!r}")
        if self.source == "image" and (self.source_template not in TEMPLATES or self.source_size <= 0):
            raise ValueError("an image source needs a source_template and a source_size")

    @property
    def target_shape(self) -> tuple[int, int, int, int]:
        return (1, 3, self.size, self.size)

    @property
    def source_shape(self) -> tuple[int, ...]:
        if self.source == "image":
            return (1, 3, self.source_size, self.source_size)
        return (1, EMBEDDING_SIZE)


def contract_for(size: int | None, template: str | None, normalisation: str | None, *, denormalise: bool,
                 source: str, source_template: str | None = None, source_size: int = 0,
                 name: str = "swapper") -> SwapperContract:
    """A :class:`SwapperContract` from a registry record's size, template and normalisation.

    Raises:
        ValueError: a missing size or template, or a normalisation without a mean/std (one line naming ``name``).
    """
    if not size or not template:
        raise ValueError(f"{name}: the registry record needs a size and a template")
    if normalisation is None or normalisation not in MEAN_STD:
        raise ValueError(f"{name}: normalisation {normalisation!r} is not one of {', '.join(MEAN_STD)}")
    mean, std = MEAN_STD[normalisation]
    return SwapperContract(size, template, mean, std, denormalise, source, source_template, source_size)


# -- pure pre/post-processing ----------------------------------------------------------------------

def target_input(aligned: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """``(N, S, S, 3)`` (or one ``(S, S, 3)``) RGB ``[0, 1]`` -> ``(N, 3, S, S)`` float32 ``(x - mean) / std``."""
    batch = np.asarray(aligned, np.float64)
    batch = batch[None] if batch.ndim == 3 else batch
    normalised = (batch - np.asarray(mean, np.float64)) / np.asarray(std, np.float64)
    return np.ascontiguousarray(normalised.transpose(0, 3, 1, 2), dtype=np.float32)


def swapped_output(output: np.ndarray, mean: Sequence[float], std: Sequence[float], denormalise: bool) -> np.ndarray:
    """Output ``(N, 3, S, S)`` -> ``(N, S, S, 3)`` float32 RGB: ``x * std + mean`` when ``denormalise``, then
    clipped to ``[0, 1]``."""
    batch = np.asarray(output, np.float64)
    if batch.ndim != 4 or batch.shape[1] != 3:
        raise ValueError(f"expected a swapper output (N, 3, S, S), got shape {batch.shape}")
    image = batch.transpose(0, 2, 3, 1)
    if denormalise:
        image = image * np.asarray(std, np.float64) + np.asarray(mean, np.float64)
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def unit(vector: np.ndarray) -> np.ndarray:
    """``vector / |vector|`` as float64 (ValueError for a zero or non-finite vector)."""
    v = np.asarray(vector, np.float64).reshape(-1)
    norm = float(np.linalg.norm(v))
    if not np.isfinite(norm) or norm == 0.0:
        raise ValueError("an embedding is zero or not finite")
    return v / norm


def embedding_source(raws: Sequence[np.ndarray], kind: str,
                     convert: Callable[[np.ndarray], np.ndarray] | None = None,
                     emap: np.ndarray | None = None) -> np.ndarray:
    """The ``source`` input ``(1, 512)`` float32 of an embedding-driven swapper.

    Args:
        raws: the raw arcface embeddings of the sources (one identity).
        kind: ``emap``, ``embedding_norm``, ``converted`` or ``converted_norm``.
        convert: the crossface converter, ``(1, 512)`` float32 -> ``(1, 512)``; needed by the ``converted`` kinds.
        emap: inswapper's ``(512, 512)`` matrix; needed by ``emap``.
    """
    if kind == "emap":
        if emap is None:
            raise ValueError("an 'emap' source needs the swapper file's emap")
        return prepare_inswapper_source(average_embedding(raws), emap)
    if kind == "embedding_norm":
        vector = average_normed_embedding(raws)
    elif kind in ("converted", "converted_norm"):
        if convert is None:
            raise ValueError(f"a '{kind}' source needs the family's embedding converter")
        converted = np.asarray(convert(average_embedding(raws).astype(np.float32)[None]), np.float64).reshape(-1)
        vector = unit(converted) if kind == "converted_norm" else converted
    else:
        raise ValueError(f"not an embedding source kind: {kind!r}")
    return vector.astype(np.float32)[None]


def image_source(source: SourceFace, template: str, size: int) -> np.ndarray:
    """An ``image`` source input: the source face aligned on ``template`` at ``size`` px, ``(1, 3, s, s)``
    float32 RGB in ``[0, 1]``."""
    _, _, aligned = align_crop(np.clip(source.image, 0.0, 1.0), points5_from_68(source.landmarks), template, size)
    return target_input(aligned, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))


# -- pixel boost -----------------------------------------------------------------------------------

def boost_factor(work_size: int, model_size: int, name: str = "the swapper") -> int:
    """``k = work_size / model_size``: 1 for 0 (native); ValueError (one line naming ``name`` and its size)
    for a size that is not a multiple of the model's or above :data:`MAX_WORK_SIZE`."""
    if work_size == 0:
        return 1
    if work_size < 0 or work_size % model_size or work_size > MAX_WORK_SIZE:
        raise ValueError(f"pixel_boost {work_size}: {name} works at {model_size} px, so the pixel boost must be 0 "
                         f"or a multiple of {model_size} up to {MAX_WORK_SIZE}")
    return work_size // model_size


def implode_tiles(aligned: np.ndarray, k: int) -> np.ndarray:
    """``(k*S, k*S, C)`` -> ``(k*k, S, S, C)``: tile ``i * k + j`` is ``aligned[i::k, j::k]``."""
    image = np.asarray(aligned)
    side = image.shape[0]
    if image.ndim != 3 or image.shape[1] != side or side % k:
        raise ValueError(f"expected a square (k*S, k*S, C) image with k={k}, got shape {image.shape}")
    s = side // k
    return image.reshape(s, k, s, k, image.shape[2]).transpose(1, 3, 0, 2, 4).reshape(k * k, s, s, image.shape[2])


def explode_tiles(tiles: np.ndarray, k: int) -> np.ndarray:
    """The inverse of :func:`implode_tiles`: ``(k*k, S, S, C)`` -> ``(k*S, k*S, C)``."""
    batch = np.asarray(tiles)
    if batch.ndim != 4 or batch.shape[0] != k * k or batch.shape[1] != batch.shape[2]:
        raise ValueError(f"expected (k*k, S, S, C) tiles with k={k}, got shape {batch.shape}")
    s, c = batch.shape[1], batch.shape[3]
    return batch.reshape(k, k, s, s, c).transpose(2, 0, 3, 1, 4).reshape(k * s, k * s, c)


def boosted_run(aligned: np.ndarray, k: int, run_batch: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``run_batch`` (``(n, S, S, 3)`` -> ``(n, S, S, 3)``) applied to the k² interleaved tiles of ``aligned``
    (``(k*S, k*S, 3)``) and put back together; k = 1 is one plain run."""
    return explode_tiles(np.asarray(run_batch(implode_tiles(aligned, k)), np.float32), k)


# -- files -----------------------------------------------------------------------------------------

class EmbeddingConverter:
    """A FaceFusion crossface converter ONNX file (``input (1, 512)`` -> ``(1, 512)``) on a device."""

    def __init__(self, path: str | Path, device: str = "auto") -> None:
        self.path = Path(path)
        self.session = open_session(self.path, device, expected_inputs={"input": (1, EMBEDDING_SIZE)})

    def __call__(self, embedding: np.ndarray) -> np.ndarray:
        return np.asarray(run_session(self.session, {"input": np.asarray(embedding, np.float32)})[0], np.float32)


class OnnxSwapperModel:
    """A swapper ONNX file on a device, fed per ``contract``: :meth:`run_batch` swaps ``(n, S, S, 3)`` aligned
    faces with one source input, in one call when the file's batch dimension is free, else one by one.

    Raises:
        OnnxModelError: not loadable, or no ``target`` / ``source`` input of the contract's shapes.
    """

    def __init__(self, path: str | Path, device: str, contract: SwapperContract) -> None:
        self.path = Path(path)
        self.contract = contract
        expected: dict[str, tuple[int | None, ...]] = {"target": (None, *contract.target_shape[1:]),
                                                       "source": (None, *contract.source_shape[1:])}
        self.session = open_session(self.path, device, expected_inputs=expected)
        self._run = session_runner(self.session)  # (IO binding with reused device buffers on CUDA)
        dims = {arg.name: arg.shape for arg in self.session.get_inputs()}
        self.batched = not isinstance(dims["target"][0], int) or dims["target"][0] <= 0

    def run_batch(self, aligned: np.ndarray, source: np.ndarray) -> np.ndarray:
        c = self.contract
        batch = target_input(aligned, c.mean, c.std)
        if self.batched:
            sources = np.repeat(np.asarray(source, np.float32), batch.shape[0], axis=0)
            output = self._run({"target": batch, "source": sources})[0]
        else:
            output = np.concatenate([self._run({"target": batch[i:i + 1], "source": source})[0]
                                     for i in range(batch.shape[0])])
        return swapped_output(output, c.mean, c.std, c.denormalise)


@dataclass
class SwapperAdapter:
    """A loaded swapper behind :class:`Swapper`, shared by every session (source inputs remembered by the
    sources' content); :meth:`with_pixel_boost` gives the same model at a larger work size.

    Attributes:
        model: the swapper file.
        embedder: arcface for the embedding kinds (None: an unverified set-up, the dlib identity stands in).
        converter: the crossface converter of the ``converted`` kinds.
        emap: inswapper's matrix (the ``emap`` kind).
        file_id: the swapper's and its helpers' ids.
        work_size: pixel boost (0 = the model's size).
    """

    model: OnnxSwapperModel
    embedder: ArcfaceEmbedder | None
    converter: Callable[[np.ndarray], np.ndarray] | None
    file_id: str
    work_size: int = 0
    emap: np.ndarray | None = field(default=None, repr=False)
    _vectors: Memo[np.ndarray] = field(default_factory=lambda: Memo(SOURCE_VECTORS), repr=False)

    def __post_init__(self) -> None:
        boost_factor(self.work_size, self.model.contract.size, self.file_id.split("@")[0])

    @property
    def model_id(self) -> str:
        if self.work_size in (0, self.model.contract.size):
            return self.file_id
        return f"{self.file_id}:boost={self.work_size}"

    @property
    def template(self) -> str:
        return self.model.contract.template

    @property
    def size(self) -> int:
        return self.work_size or self.model.contract.size

    def with_pixel_boost(self, work_size: int) -> SwapperAdapter:
        """This model working at ``work_size`` px (0: native); shares the loaded file and remembered sources.

        Raises:
            ValueError: not 0 or a multiple of the model's size up to 1024 (one line).
        """
        if work_size == self.model.contract.size:
            work_size = 0
        return self if work_size == self.work_size else replace(self, work_size=int(work_size))

    def source_vector(self, sources: SourceFace | Sequence[SourceFace]) -> np.ndarray:
        faces = (sources,) if isinstance(sources, SourceFace) else tuple(sources)
        if not faces:
            raise ValueError("a swap needs at least one source face")
        key = "+".join(source_digest(s) for s in faces)
        return self._vectors.get_or_compute(key, lambda: self._source_input(faces))

    def _source_input(self, faces: Sequence[SourceFace]) -> np.ndarray:
        c = self.model.contract
        if c.source == "image":
            assert c.source_template is not None
            return image_source(faces[0], c.source_template, c.source_size)
        return embedding_source([self._raw(s) for s in faces], c.source, self.converter, self.emap)

    def _raw(self, source: SourceFace) -> np.ndarray:
        if self.embedder is not None:
            return np.asarray(self.embedder.embed(source.image, points5_from_68(source.landmarks)), np.float32)
        return np.tile(np.asarray(source.embedding, np.float32), 4)  # unverified stand-in, as inswapper's

    def run(self, aligned: np.ndarray, source_vector: np.ndarray) -> np.ndarray:
        """``(N, N, 3)`` aligned target (N = :attr:`size`) -> the swapped ``(N, N, 3)``, both RGB ``[0, 1]``."""
        k = boost_factor(self.work_size, self.model.contract.size)
        return boosted_run(aligned, k, lambda tiles: self.model.run_batch(tiles, source_vector))


def pixel_boosted(swapper: SwapperT, work_size: int, name: str) -> SwapperT:
    """``swapper`` working at ``work_size`` px (a session's ``pixel_boost``); 0 or its own size gives it back
    unchanged, so its id and every cache key stay as they were.

    Raises:
        ValueError: a size that is not a multiple of the model's up to 1024, or a swapper that cannot work at
            another size (one line naming ``name`` and its size).
    """
    if not work_size or work_size == swapper.size:
        return swapper
    boost = getattr(swapper, "with_pixel_boost", None)
    if boost is None:
        raise ValueError(f"pixel_boost {work_size}: {name} works only at its own size ({swapper.size} px)")
    if isinstance(swapper, SwapperAdapter):
        boost_factor(work_size, swapper.model.contract.size, name)  # (the message names the registry name)
    boosted: SwapperT = boost(work_size)
    return boosted


def warm_up_swapper(model: OnnxSwapperModel) -> None:
    """One run on zeros, so the first frame does not pay for memory planning."""
    c = model.contract
    model.run_batch(np.zeros((1, c.size, c.size, 3), np.float32), np.zeros(c.source_shape, np.float32) + 0.01)


__all__ = ["MAX_WORK_SIZE", "SOURCE_KINDS", "EmbeddingConverter", "OnnxModelError", "OnnxSwapperModel", "Swapper",
           "SwapperAdapter", "SwapperContract", "boost_factor", "boosted_run", "contract_for", "embedding_source",
           "explode_tiles", "image_source", "implode_tiles", "pixel_boosted", "swapped_output",
           "target_input", "unit", "warm_up_swapper"]
