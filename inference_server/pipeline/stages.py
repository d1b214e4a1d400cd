"""Model stages: what runs on one face crop before compositing, for each mode and choice of models.

A stage takes the working crop in model space (display-referred sRGB-encoded [0, 1] float32, (h, w, 3)),
the face's 68 landmarks in crop pixels and, for swaps, the chosen source face, and returns the cache
payload (a :class:`~inference_server.compositing.classical_output.SwapModelOutput` for the classical swap,
a :class:`~inference_server.compositing.delta_output.DeltaOutput` for everything aligned). Stages are deterministic and hold no per-frame
state; the loaded models they wrap are shared by every session of the server.

- swap, classical: the embedded landmark swap (:func:`~inference_server.swap.swap_model`).
- swap, aligned (e.g. inswapper_128), pasted back per the ``paste`` setting (:func:`aligned_swap`):
  ``residual`` applies the model's change, ``crop + warp_back(model(x) - x)``, so the plate keeps the
  detail finer than the model's resolution and a model that changes nothing gives back the plate exactly;
  ``replace`` puts the model's face itself, ``warp_back(model(x))``, in the crop's place inside the model's
  square (FaceFusion's paste-back), so none of the target's own detail is kept.
- restore (GPEN, the embedded enhancer): the restored face replaces the crop inside the face region.
- swap+restore: the swapped face is restored before it is cached.

Every stage may carry a face parser (its labels cached as ``parser_labels``) and an occluder (its keep-mask
cached as ``occlusion``, :func:`with_occlusion`); both are computed on the plate's crop and used at composite
time, where the most restrictive mask wins (:func:`~inference_server.compositing.assembly.controlled_mask`).

Each stage takes a face's small-face strength (``small``, 0..1, decided by the face's size against
``min_face``, see :mod:`.small_faces`); only the classical swap uses it (no forehead band, a smaller mask,
the target's glasses kept where a face parser finds them), the others take it for a uniform call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from ..compositing.delta_output import make_delta_output
from ..faces.sources import SourceFace
from ..models.aligned_result import AlignedSwapper, Restored
from ..models.alignment import coverage_mask, estimate_alignment, points5_from_68, warp_to_crop, warp_to_model
from ..swap import SwapParams, swap_model

Payload = dict[str, np.ndarray]
FEATHER = 0.1  # soft edge of an aligned model's square, fraction of its side
PASTE_MODES = ("residual", "replace")  # how an aligned swap goes back into the crop (the ``paste`` setting)


@runtime_checkable
class Restorer(Protocol):
    """Restores the face of a model-space crop (GPEN in PyTorch or ONNX, or the embedded enhancer)."""

    @property
    def model_id(self) -> str: ...

    def restore(self, crop_model: np.ndarray, landmarks: np.ndarray) -> Restored: ...


@runtime_checkable
class FaceParser(Protocol):
    """Labels face parts (BiSeNet); ``labels(crop, landmarks)`` is (h, w) uint8 CelebAMask-HQ labels."""

    @property
    def model_id(self) -> str: ...

    def labels(self, crop_model: np.ndarray, landmarks: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class Occluder(Protocol):
    """Finds what is in front of the face (XSeg); ``keep(crop, landmarks)`` is an (h, w) float32 keep-mask in
    [0, 1]: 1 where the face is seen, 0 where something covers it (the plate stays there)."""

    @property
    def model_id(self) -> str: ...

    def keep(self, crop_model: np.ndarray, landmarks: np.ndarray) -> np.ndarray: ...


OCCLUSION_KEY = "occlusion"
"""Payload key of the occluder's keep-mask: (h, w) float16 over the whole crop (see :func:`with_occlusion`)."""


def with_occlusion(payload: Payload, occluder: Occluder | None, crop_model: np.ndarray,
                   landmarks: np.ndarray) -> Payload:
    """Add the occluder's keep-mask of the crop to a payload (key :data:`OCCLUSION_KEY`, (h, w) float16 in
    [0, 1]), when there is an occluder. Compositing takes the minimum of it and the face mask."""
    if occluder is None:
        return payload
    keep = np.clip(np.asarray(occluder.keep(crop_model, landmarks), np.float32), 0.0, 1.0)
    if keep.shape != crop_model.shape[:2]:
        raise ValueError(f"occluder keep-mask is {keep.shape}, the crop is {crop_model.shape[:2]}")
    return {**payload, OCCLUSION_KEY: keep.astype(np.float16)}


def with_labels(payload: Payload, parser: FaceParser | None, crop_model: np.ndarray, landmarks: np.ndarray) -> Payload:
    """Add the parser's labels of the crop to a payload (key ``parser_labels``), when there is a parser."""
    if parser is None:
        return payload
    return {**payload, "parser_labels": np.asarray(parser.labels(crop_model, landmarks), np.uint8)}


def kept_glasses(keep: np.ndarray, box: np.ndarray, labels: np.ndarray, small: float, size: float) -> np.ndarray:
    """The classical swap's ``keep`` factor with the target's glasses kept from the plate on a small face.

    A 40 px face's glasses cannot be swapped cleanly (half a rim, ghosted lenses): where the parser labels
    eyeglasses (grown and softened by ~3 % of the face size) the plate stays, by ``small`` (0..1).

    Args:
        keep: (bh, bw) float16 keep factor over the work box ``box`` (y0, x0, y1, x1) of the crop.
        labels: (h, w) uint8 CelebAMask-HQ labels of the crop.
        size: the face size in crop pixels.
    Returns:
        (bh, bw) float16.
    """
    from ..models.onnx_parser import REGION_LABELS  # (onnx is imported only when a parser ran)

    y0, x0, y1, x1 = (int(v) for v in box)
    glasses = np.isin(np.asarray(labels)[y0:y1, x0:x1], REGION_LABELS["glasses"]).astype(np.uint8)
    if not glasses.any():
        return keep
    k = int(0.03 * size) * 2 + 1
    grown = cv2.dilate(glasses, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))).astype(np.float32)
    soft = np.clip(np.maximum(cv2.GaussianBlur(grown, (0, 0), max(0.5, 0.015 * size)), glasses), 0.0, 1.0)
    return (keep.astype(np.float32) * (1.0 - np.float32(small) * soft)).astype(np.float16)


def _mask_ids(parser: FaceParser | None, occluder: Occluder | None = None) -> tuple[str, ...]:
    """The mask models' ids (parser, then occluder, each only when present: cache keys change with them)."""
    return tuple(m.model_id for m in (parser, occluder) if m is not None)


class Stage(Protocol):
    """A model stage: ``model_ids`` identify it (cache keys, metadata); ``run`` computes one face."""

    @property
    def model_ids(self) -> tuple[str, ...]: ...

    @property
    def needs_source(self) -> bool: ...

    @property
    def one_identity(self) -> bool:
        """The stage swaps with one identity made of every source (``identity``), not the one source chosen
        for the face (``source``)."""
        ...

    def run(self, crop_model: np.ndarray, landmarks: np.ndarray, source: SourceFace | None,
            small: float = 0.0, identity: Sequence[SourceFace] = ()) -> Payload: ...


def aligned_swap(crop_model: np.ndarray, landmarks: np.ndarray, run: Callable[[np.ndarray], np.ndarray],
                 template: str, size: int, paste: str = "residual") -> tuple[np.ndarray, np.ndarray]:
    """An aligned model's swap of the crop, with ``x`` the crop aligned on ``template`` at ``size`` px:

    - ``paste="residual"``: its change applied to the crop, ``crop + warp_to_crop(run(x) - x)``;
    - ``paste="replace"``: its face in the crop's place, ``warp_to_crop(run(x))``;

    both only where the model's square covers the crop (its soft edge, the coverage, is applied when
    compositing, like every other mask).

    Returns ``(result, coverage)``: (h, w, 3) float32 model space (the crop where the coverage is 0) and
    the (h, w) float32 [0, 1] coverage of the model's square.
    """
    if paste not in PASTE_MODES:
        raise ValueError(f"paste must be one of {', '.join(PASTE_MODES)}, got {paste!r}")
    h, w = crop_model.shape[:2]
    matrix = estimate_alignment(points5_from_68(landmarks), template, size)
    aligned = warp_to_model(crop_model, matrix, size)
    output = np.asarray(run(aligned), np.float32)
    coverage = coverage_mask(matrix, size, (h, w), feather=FEATHER)
    inside = coverage[..., None] > 0.0
    if paste == "replace":
        result = np.where(inside, warp_to_crop(output, matrix, (h, w)), crop_model)
    else:
        result = crop_model + np.where(inside, warp_to_crop(output - aligned, matrix, (h, w)), 0.0).astype(np.float32)
    return result.astype(np.float32), coverage


def residual_swap(crop_model: np.ndarray, landmarks: np.ndarray, run: Callable[[np.ndarray], np.ndarray],
                  template: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`aligned_swap` with ``paste="residual"``."""
    return aligned_swap(crop_model, landmarks, run, template, size, "residual")


def _restore_crop(restorer: Restorer, crop_model: np.ndarray, landmarks: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, bool]:
    return _blend_restored(crop_model, restorer.restore(crop_model, landmarks))


def _blend_restored(crop_model: np.ndarray, restored: Restored) -> tuple[np.ndarray, np.ndarray, bool]:
    c = restored.coverage[..., None]
    image = crop_model * (1.0 - c) + np.asarray(restored.image, np.float32) * c
    return image.astype(np.float32), restored.coverage, restored.fp32_fallback


def restore_crops(restorer: Restorer, crops: Sequence[np.ndarray], landmarks: Sequence[np.ndarray]
                  ) -> list[tuple[np.ndarray, np.ndarray, bool]]:
    """:func:`_restore_crop` of several faces (from several frames): one model call when the restorer has a
    batch API (``restore_many``, e.g. :class:`~inference_server.models.adapters.TorchGpenAdapter`), one call
    per face otherwise. Each item: (restored crop (h, w, 3) float32 model space, coverage (h, w), fp32 fallback)."""
    many = getattr(restorer, "restore_many", None)
    restored = (many(crops, landmarks) if many is not None
                else [restorer.restore(c, points) for c, points in zip(crops, landmarks, strict=True)])
    return [_blend_restored(c, r) for c, r in zip(crops, restored, strict=True)]


@dataclass(frozen=True)
class ClassicalSwapStage:
    """The embedded classical swap, optionally followed by a restorer on the warped source face."""

    params: SwapParams
    algorithm_id: str
    restorer: Restorer | None = None
    parser: FaceParser | None = None
    needs_source: bool = True
    occluder: Occluder | None = None
    one_identity: bool = False

    @property
    def model_ids(self) -> tuple[str, ...]:
        return ((self.algorithm_id,) + ((self.restorer.model_id,) if self.restorer is not None else ())
                + _mask_ids(self.parser, self.occluder))

    def run(self, crop_model: np.ndarray, landmarks: np.ndarray, source: SourceFace | None,
            small: float = 0.0, identity: Sequence[SourceFace] = ()) -> Payload:
        payload = with_labels(self._run(crop_model, landmarks, source, small), self.parser, crop_model, landmarks)
        payload = with_occlusion(payload, self.occluder, crop_model, landmarks)
        if small > 0.0 and "parser_labels" in payload:
            payload = {**payload, "keep": kept_glasses(payload["keep"], payload["box"], payload["parser_labels"],
                                                       small, float(payload["settings"][0]))}
        return payload

    def _run(self, crop_model: np.ndarray, landmarks: np.ndarray, source: SourceFace | None,
             small: float) -> Payload:
        assert source is not None
        out = swap_model(crop_model, landmarks, source, self.params, small)
        if self.restorer is None or out.is_empty:
            return out.to_arrays()
        y0, x0, y1, x1 = (int(v) for v in out.box)
        full = np.array(crop_model, np.float32, copy=True)
        full[y0:y1, x0:x1] = out.source.astype(np.float32)
        image, _, _ = _restore_crop(self.restorer, full, out.destination)
        restored = replace(out, source=np.clip(image[y0:y1, x0:x1], 0.0, 1.0).astype(np.float16))
        return restored.to_arrays()


@dataclass(frozen=True)
class AlignedSwapStage:
    """An aligned swap model pasted back per ``paste`` (:func:`aligned_swap`), optionally followed by a
    restorer."""

    swapper: AlignedSwapper
    restorer: Restorer | None = None
    parser: FaceParser | None = None
    needs_source: bool = True
    occluder: Occluder | None = None
    paste: str = "residual"
    one_identity: bool = True

    @property
    def model_ids(self) -> tuple[str, ...]:
        return ((self.swapper.model_id,) + ((self.restorer.model_id,) if self.restorer is not None else ())
                + _mask_ids(self.parser, self.occluder))

    @property
    def key_settings(self) -> dict[str, str]:
        """The stage's settings that change its output besides its models (part of the model-output key)."""
        return {"paste": self.paste}

    def run(self, crop_model: np.ndarray, landmarks: np.ndarray, source: SourceFace | None,
            small: float = 0.0, identity: Sequence[SourceFace] = ()) -> Payload:
        """``identity``: every source of the session (one identity for every face and frame, FaceFusion's
        average of the source embeddings); empty: ``source`` alone."""
        sources = tuple(identity) if identity else (source,) if source is not None else ()
        payload = with_labels(self._run(crop_model, landmarks, sources), self.parser, crop_model, landmarks)
        return with_occlusion(payload, self.occluder, crop_model, landmarks)

    def _run(self, crop_model: np.ndarray, landmarks: np.ndarray, sources: Sequence[SourceFace]) -> Payload:
        assert sources, "an aligned swap needs a source"
        vector = self.swapper.source_vector(sources)
        result, coverage = aligned_swap(crop_model, landmarks, lambda x: self.swapper.run(x, vector),
                                        self.swapper.template, self.swapper.size, self.paste)
        fallback = False
        if self.restorer is not None:
            restored, _, fallback = _restore_crop(self.restorer, result, landmarks)
            c = coverage[..., None]
            result = (result * (1.0 - c) + restored * c).astype(np.float32)
        return make_delta_output(crop_model, result, coverage, landmarks, fallback).to_arrays()

    def run_many(self, crops: Sequence[np.ndarray], landmarks: Sequence[np.ndarray],
                 identity: Sequence[SourceFace]) -> list[Payload]:
        """:meth:`run` of several faces (from several frames) with one identity: the swap face by face, the
        restorer on all of them in one call where it has a batch API (:func:`restore_crops`). Same payloads
        as :meth:`run` on each, up to the restorer's batch-size rounding."""
        vector = self.swapper.source_vector(tuple(identity))
        swapped = [aligned_swap(c, points, lambda x: self.swapper.run(x, vector), self.swapper.template,
                                self.swapper.size, self.paste) for c, points in zip(crops, landmarks, strict=True)]
        results = [(result, False) for result, _ in swapped]
        if self.restorer is not None:
            restored = restore_crops(self.restorer, [r for r, _ in swapped], landmarks)
            results = [((result * (1.0 - cov[..., None]) + image * cov[..., None]).astype(np.float32), fallback)
                       for (result, cov), (image, _, fallback) in zip(swapped, restored, strict=True)]
        payloads = []
        for c, points, (result, fallback), (_, coverage) in zip(crops, landmarks, results, swapped, strict=True):
            payload = make_delta_output(c, result, coverage, points, fallback).to_arrays()
            payloads.append(with_occlusion(with_labels(payload, self.parser, c, points), self.occluder, c, points))
        return payloads


@dataclass(frozen=True)
class RestoreStage:
    """Restoration only: the restored face replaces the crop inside the face region."""

    restorer: Restorer
    parser: FaceParser | None = None
    needs_source: bool = False
    occluder: Occluder | None = None
    one_identity: bool = False

    @property
    def model_ids(self) -> tuple[str, ...]:
        return (self.restorer.model_id,) + _mask_ids(self.parser, self.occluder)

    def run(self, crop_model: np.ndarray, landmarks: np.ndarray, source: SourceFace | None,
            small: float = 0.0, identity: Sequence[SourceFace] = ()) -> Payload:
        image, coverage, fallback = _restore_crop(self.restorer, crop_model, landmarks)
        payload = make_delta_output(crop_model, image, coverage, landmarks, fallback).to_arrays()
        payload = with_labels(payload, self.parser, crop_model, landmarks)
        return with_occlusion(payload, self.occluder, crop_model, landmarks)

    def run_many(self, crops: Sequence[np.ndarray], landmarks: Sequence[np.ndarray],
                 identity: Sequence[SourceFace] = ()) -> list[Payload]:
        """:meth:`run` of several faces (from several frames), the restorer called once where it has a batch
        API (:func:`restore_crops`); same payloads as :meth:`run` on each up to its batch-size rounding."""
        payloads = []
        for c, points, (image, coverage, fallback) in zip(crops, landmarks,
                                                          restore_crops(self.restorer, crops, landmarks), strict=True):
            payload = make_delta_output(c, image, coverage, points, fallback).to_arrays()
            payloads.append(with_occlusion(with_labels(payload, self.parser, c, points), self.occluder, c, points))
        return payloads


def with_paste(stage: Stage | None, paste: str) -> Stage | None:
    """``stage`` pasting back per ``paste`` when it is an aligned swap; any other stage as it is."""
    if isinstance(stage, AlignedSwapStage) and stage.paste != paste:
        if paste not in PASTE_MODES:
            raise ValueError(f"paste must be one of {', '.join(PASTE_MODES)}, got {paste!r}")
        return replace(stage, paste=paste)
    return stage


__all__ = ["OCCLUSION_KEY", "PASTE_MODES", "AlignedSwapStage", "AlignedSwapper", "ClassicalSwapStage", "FaceParser",
           "Occluder", "RestoreStage", "Restorer", "Stage", "aligned_swap", "kept_glasses", "residual_swap", "with_labels",
           "with_occlusion", "with_paste"]
