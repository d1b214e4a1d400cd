"""One face through the model stage (cached by content) and the compositing controls, at frame size.

Convention:
    - A face's model input is cut from the original plate, so its model output depends only on (frame
      content, landmarks, models, model parameters) and is cached under a key of those.
    - Cached model outputs are stored at reduced precision; a freshly computed output goes through the
      same reduction before use, so cold and warm renders give identical pixels.
    - Crops are ``(h, w, 3)`` float32 scene-linear RGB of the plate inside a :class:`~.crops.Box`, masks
      ``(h, w)`` float32 in [0, 1].
    - A face parser's labels and an occluder's keep-mask are part of the cached payload (computed on the
      plate's crop by the stage, keyed by the stage's model ids), applied when compositing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from ..compositing.classical import composite_face_crop, matched_face
from ..compositing.classical_output import SwapModelOutput
from ..compositing.controls import CompositeControls, colour_stage_key
from ..compositing.delta import composite_delta, delta_face
from ..compositing.delta_output import DeltaOutput, is_delta_payload
from ..compositing.regions import soft_parsed_masks
from ..faces.geometry import face_size
from ..faces.sources import SourceFace, choose_source_index
from ..temporal.source_plan import SourceMix
from .crops import Box, exposure_scale, union
from .memos import RenderMemos
from .settings import RenderSettings
from .small_faces import small_face_strength
from .stages import OCCLUSION_KEY, AlignedSwapStage, Stage

Payload = dict[str, np.ndarray]
ModelOutput = SwapModelOutput | DeltaOutput


class ModelCache(Protocol):
    """What rendering needs of a cache: get and put payloads by key, and get or compute one with concurrent
    askers of a key sharing one computation (see ``store.payload_cache``)."""

    def get(self, key: str) -> Payload | None: ...

    def put(self, key: str, payload: Payload) -> None: ...

    def get_or_compute(self, key: str, compute: Callable[[], Payload]) -> tuple[Payload, bool]: ...


@dataclass(frozen=True)
class WorkingCrop:
    """A face's plate crop as the model stage sees it."""

    box: Box
    linear: np.ndarray     # (h', w', 3) float32, exposure-normalised, finite, at working size
    landmarks: np.ndarray  # (68, 2) float32 in working-crop pixels
    scale: float           # exposure scale
    size: tuple[int, int]  # (w, h) of the crop in the frame


def readonly(array: np.ndarray) -> np.ndarray:
    """A read-only view of ``array`` (memo values are shared)."""
    view = array.view()
    view.flags.writeable = False
    return view


def finite(crop: np.ndarray) -> np.ndarray:
    """The plate crop with non-finite values as 0 (a change there counts as none); a new array, bit for bit
    ``np.nan_to_num(crop, nan=0, posinf=0, neginf=0)`` in fewer passes."""
    return np.where(np.isfinite(crop), crop, crop.dtype.type(0))


def finite_max(values: np.ndarray) -> np.floating | None:
    """The largest finite value of ``values`` (None when there is none): ``values[np.isfinite(values)].max()``,
    without gathering the finite values when the plain maximum is finite already (no NaN or +inf among them: then
    it is the largest finite value), which is the usual plate crop."""
    if values.size == 0:
        return None
    top = values.max()
    if np.isfinite(top):
        return top
    kept = values[np.isfinite(values)]
    return kept.max() if kept.size else None


def _finite_or(crop: np.ndarray, posinf: float) -> np.ndarray:
    """``crop`` with NaN and -inf as 0 and +inf as ``posinf`` (bit for bit ``np.nan_to_num`` with those
    values, in fewer passes); ``crop`` itself when it is all finite."""
    good = np.isfinite(crop)
    if good.all():
        return crop
    fill = np.where(crop > 0, crop.dtype.type(posinf), crop.dtype.type(0))
    return np.where(good, crop, fill)


def working_crop(crop: np.ndarray, box: Box, target_landmarks: np.ndarray, settings: RenderSettings,
                 crop_hash: str, memos: RenderMemos | None) -> WorkingCrop:
    """``crop``: ``(h, w, 3)`` float32 linear RGB of the plate inside ``box`` of the frame ``crop_hash``."""
    h, w = crop.shape[:2]
    factor = min(1.0, settings.max_working_side / max(h, w))
    size = (max(1, round(w * factor)), max(1, round(h * factor)))

    def normalised() -> tuple[float, np.ndarray]:
        scale = exposure_scale(crop)
        clean = _finite_or(crop, scale) / np.float32(scale)
        if factor < 1.0:
            clean = cv2.resize(clean, size, interpolation=cv2.INTER_AREA)
        return scale, readonly(np.ascontiguousarray(clean, np.float32))

    key = ("working", crop_hash, tuple(box), settings.max_working_side)
    scale, clean = memos.working.get_or_compute(key, normalised) if memos is not None else normalised()
    landmarks = target_landmarks - np.array([box.x0, box.y0], np.float32)
    if factor < 1.0:
        landmarks = (landmarks + 0.5) * np.array([size[0] / w, size[1] / h], np.float32) - 0.5
    return WorkingCrop(box, clean, landmarks.astype(np.float32), scale, (w, h))


def model_key(frame_hash: str, key_base: str, source_hash: str, work: WorkingCrop, small: float = 0.0) -> str:
    """Content key of one face's model output (``source_hash`` empty when the stage takes no source;
    ``small`` the face's small-face strength, part of the key when above 0)."""
    digest = hashlib.sha256()
    for part in (frame_hash, key_base, source_hash, repr(tuple(work.box)), repr(work.scale), repr(work.size)):
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    digest.update(np.ascontiguousarray(work.landmarks, np.float32).tobytes())
    if small > 0.0:
        digest.update(f"\0small={small!r}".encode())
    return digest.hexdigest()


def output_from_payload(payload: Payload) -> ModelOutput:
    """The model output a cache payload holds (classical swap or aligned stage)."""
    return DeltaOutput.from_arrays(payload) if is_delta_payload(payload) else SwapModelOutput.from_arrays(payload)


def _parsed_masks(payload: Payload, work: WorkingCrop) -> dict[str, np.ndarray] | None:
    """Soft parser masks of the crop's face parts, when the stage ran a face parser."""
    labels = payload.get("parser_labels")
    if labels is None:
        return None
    from ..models.onnx_parser import parser_region_masks  # (onnx is imported only when a parser ran)

    hard = parser_region_masks(labels, labels.shape[:2])
    return soft_parsed_masks(hard, face_size(work.landmarks))


def _occlusion(payload: Payload, work: WorkingCrop) -> np.ndarray | None:
    """The occluder's (h, w) float32 keep-mask of the crop (1 = face seen), when the stage ran an occluder."""
    keep = payload.get(OCCLUSION_KEY)
    if keep is None:
        return None
    array = np.asarray(keep, np.float32)
    if array.shape != work.linear.shape[:2]:
        raise ValueError(f"cached occlusion mask is {array.shape}, the crop is {work.linear.shape[:2]}")
    return array


@dataclass(frozen=True)
class _Masks:
    """What a model stage cached besides its output that shapes the mask: a parser's soft region masks and
    an occluder's keep-mask (each None without that model)."""

    parsed: dict[str, np.ndarray] | None
    occlusion: np.ndarray | None


def _masks(payload: Payload, work: WorkingCrop) -> _Masks:
    return _Masks(_parsed_masks(payload, work), _occlusion(payload, work))


def _model_output(work: WorkingCrop, source: SourceFace | None, settings: RenderSettings,
                  cache: ModelCache | None, key: str, small: float, identity: Sequence[SourceFace] = ()
                  ) -> tuple[ModelOutput, _Masks, bool]:
    def compute() -> Payload:
        return settings.model_stage.run(settings.colourspace.to_model(work.linear), work.landmarks, source, small,
                                        identity)

    # one computation per key at a time (frames t and t + 1 render each other as stabilisation neighbours)
    payload, hit = cache.get_or_compute(key, compute) if cache is not None else (compute(), False)
    # through the same reduction as a cached payload: cold and warm renders give the same pixels
    return output_from_payload(payload), _masks(payload, work), hit


@dataclass(frozen=True)
class Processed:
    """One face rendered at frame size over its crop box."""

    work: WorkingCrop
    source: SourceFace | None
    face: np.ndarray   # (h, w, 3) float32 linear, frame-size crop
    mask: np.ndarray   # (h, w) float32
    hit: bool
    fp32_fallback: bool
    keeps_plate: bool  # an aligned stage: the face is the plate plus the model's change
    reach: Box         # frame pixels outside which the mask is 0 whatever the controls (:func:`reach_box`)
    occlusion: np.ndarray | None = None  # (h, w) float32 frame-size keep-mask of an occluder (1 = face seen)

    def change(self, crop: np.ndarray) -> np.ndarray:
        """What temporal stabilisation averages: the change to the plate for an aligned stage (the plate's
        own grain stays its own), the face itself for the classical swap (which replaces the plate)."""
        return self.face - finite(crop) if self.keeps_plate else self.face


def reach_box(output_box: np.ndarray, work: WorkingCrop) -> Box:
    """The frame-pixel box outside which a rendered face's mask is 0 whatever the compositing controls (nothing
    of the face reaches the frame there): the model output's work box (``(y0, x0, y1, x1)`` on the working
    crop; every mask a stage's output gives is 0 outside it) mapped to the crop's frame size, grown by the
    reach of the resize to frame size (2 working pixels, the bicubic taps) and clipped to the crop box
    ``work.box``. Empty (x1 <= x0) when the work box is."""
    y0, x0, y1, x1 = (int(v) for v in output_box)
    if y1 <= y0 or x1 <= x0:
        return Box(work.box.x0, work.box.y0, work.box.x0, work.box.y0)
    hw, ww = work.linear.shape[:2]
    sx, sy = work.size[0] / ww, work.size[1] / hw
    pad_x, pad_y = 2 * int(np.ceil(sx)) + 1, 2 * int(np.ceil(sy)) + 1
    b = work.box
    return Box(max(b.x0, b.x0 + int(np.floor(x0 * sx)) - pad_x), max(b.y0, b.y0 + int(np.floor(y0 * sy)) - pad_y),
               min(b.x1, b.x0 + int(np.ceil(x1 * sx)) + pad_x), min(b.y1, b.y0 + int(np.ceil(y1 * sy)) + pad_y))


def replaces_face(stage: Stage) -> bool:
    """Whether the stage's face replaces the plate's (an aligned swap pasted back with ``replace``), so none of
    the plate's own detail is meant to stay in it (not even the detail finer than the working size)."""
    return isinstance(stage, AlignedSwapStage) and stage.paste == "replace"


def mixed(first: Processed, second: Processed, weight: float, crop: np.ndarray) -> Processed:
    """Two renders of one face (same crop, landmarks and settings; two sources) mixed by ``weight`` (of
    ``second``, 0..1) as their composites over the plate would be: the pair (face, mask) whose composite
    ``plate + mask * (face - plate)`` is ``(1 - weight)`` x the first's plus ``weight`` x the second's.
    Its source is the one with the larger weight."""
    w = np.float32(weight)
    plate = finite(crop)
    m1, m2 = first.mask * (np.float32(1.0) - w), second.mask * w
    mask = m1 + m2
    change = m1[..., None] * (first.face - plate) + m2[..., None] * (second.face - plate)
    live = mask > 0.0
    face = plate + np.where(live[..., None], change / np.where(live, mask, 1.0)[..., None], 0.0)
    return Processed(first.work, (second if weight > 0.5 else first).source, face.astype(np.float32),
                     np.clip(mask, 0.0, 1.0).astype(np.float32), first.hit and second.hit,
                     first.fp32_fallback or second.fp32_fallback, first.keeps_plate,
                     union(first.reach, second.reach), first.occlusion)


def _keep_to_frame_size(keep: np.ndarray, work: WorkingCrop) -> np.ndarray:
    """An occluder's working-size keep-mask at the crop's frame size (bilinear), (h, w) float32."""
    if keep.shape[1::-1] == work.size:
        return keep
    return np.clip(cv2.resize(keep, work.size, interpolation=cv2.INTER_LINEAR), 0.0, 1.0)


def _to_frame_size(face: np.ndarray, mask: np.ndarray, work: WorkingCrop) -> tuple[np.ndarray, np.ndarray]:
    if face.shape[1::-1] == work.size:
        return face, mask
    face = cv2.resize(face, work.size, interpolation=cv2.INTER_CUBIC)
    mask = np.clip(cv2.resize(mask, work.size, interpolation=cv2.INTER_LINEAR), 0.0, 1.0)
    return face, mask


@dataclass(frozen=True)
class FaceRenderer:
    """Renders faces of one request: the sources and settings shared by its faces, and where model outputs
    are cached and remembered. Pure given its inputs: the same face renders to the same bits."""

    sources: Sequence[SourceFace]
    source_hashes: Sequence[str]  # content hash of each source (cache keys); its label when missing
    settings: RenderSettings
    key_base: str                 # hash of the model ids and model-affecting settings
    cache: ModelCache | None
    memos: RenderMemos | None

    def _hash(self, index: int) -> str:
        return self.source_hashes[index] if index < len(self.source_hashes) else self.sources[index].label

    def source_weights(self, landmarks: np.ndarray, mix: SourceMix | None = None) -> tuple[tuple[int, float], ...]:
        """The sources a face with ``landmarks`` is rendered with, as (index, weight) pairs summing to 1.

        None when the stage takes no source. A stage with one identity (an aligned swapper) uses every source
        alike. Otherwise the track's plan ``mix`` (:mod:`~inference_server.temporal.source_plan`: one source,
        or two while it cross-fades), else the source nearest in head pose on this frame alone."""
        stage = self.settings.model_stage
        if not stage.needs_source:
            return ()
        if stage.one_identity:
            return tuple((i, 1.0 / len(self.sources)) for i in range(len(self.sources)))
        if mix is None:
            return ((choose_source_index(self.sources, landmarks), 1.0),)
        if mix.blended:
            return ((mix.first, 1.0 - mix.weight), (mix.second, mix.weight))
        return ((mix.first, 1.0),)

    def render(self, crop: np.ndarray, box: Box, landmarks: np.ndarray, crop_hash: str,
               mix: SourceMix | None = None) -> Processed:
        """The face with ``landmarks`` (frame pixels) on ``crop`` (the plate inside ``box`` of the frame
        whose content hash is ``crop_hash``), composited with the settings' controls; a face the stage swaps
        is reduced by its small-face strength (:mod:`.small_faces`, from its size and ``min_face``).

        ``mix``: the face's sources on this frame by its track's plan (None: chosen on this frame alone).
        While it cross-fades, the face is rendered with each of the two sources (each cached as any render)
        and the two results are mixed as their composites would be (:func:`mixed`)."""
        weights = self.source_weights(landmarks, mix)
        if not weights:
            return self._render(crop, box, landmarks, crop_hash, None)
        if self.settings.model_stage.one_identity:  # every source at once; the report's source is the nearest
            index = choose_source_index(self.sources, landmarks) if mix is None else mix.dominant
            return self._render(crop, box, landmarks, crop_hash, index)
        if len(weights) == 1:
            return self._render(crop, box, landmarks, crop_hash, weights[0][0])
        (a, _), (b, weight) = weights
        first = self._render(crop, box, landmarks, crop_hash, a)
        return mixed(first, self._render(crop, box, landmarks, crop_hash, b), weight, crop)

    def _render(self, crop: np.ndarray, box: Box, landmarks: np.ndarray, crop_hash: str,
                index: int | None) -> Processed:
        """:meth:`render` with source ``index`` (None: the stage takes none)."""
        settings, memos = self.settings, self.memos
        stage = settings.model_stage
        work = working_crop(crop, box, landmarks, settings, crop_hash, memos)
        source = self.sources[index] if index is not None else None
        identity: tuple[SourceFace, ...] = ()
        if index is None:
            source_hash = ""
        elif stage.one_identity:
            identity = tuple(self.sources)
            source_hash = "+".join(self._hash(i) for i in range(len(self.sources)))
        else:
            source_hash = self._hash(index)
        small = small_face_strength(face_size(landmarks), settings.min_face) if source is not None else 0.0
        key = model_key(crop_hash, self.key_base, source_hash, work, small)
        controls = settings.controls.validated()
        if memos is not None:
            done = memos.composited.get((key, controls))
            if done is not None:  # the model ran before: a cache hit
                reach = Box(*(int(v) for v in done[3]))
                return Processed(work, source, done[0], done[1], True, bool(done[2][0]), bool(done[2][1]), reach,
                                 done[4] if len(done) > 4 else None)
        output, masks, hit = _model_output(work, source, settings, self.cache, key, small, identity)
        face, mask, fallback = self._composited(work, output, masks, controls, (key, colour_stage_key(controls)))
        # an aligned stage's change is resized, not its face: the plate keeps its full-resolution detail; a face
        # that replaces the plate's (paste replace) is resized itself, as the classical swap's is
        delta = isinstance(output, DeltaOutput) and not replaces_face(settings.model_stage)
        if delta and face.shape[1::-1] != work.size:
            change, mask = _to_frame_size((face - work.linear) * np.float32(work.scale), mask, work)
            face = finite(crop) + change
        else:
            face, mask = _to_frame_size(face * np.float32(work.scale), mask, work)
        # no new highlights: the processed face never gets brighter than the brightest finite value of its crop
        brightest = finite_max(crop)
        if brightest is not None:
            face = np.minimum(face, np.float32(brightest))
        occlusion = None if masks.occlusion is None else readonly(_keep_to_frame_size(masks.occlusion, work))
        reach = reach_box(output.box, work)
        if memos is not None:
            memos.composited.put((key, controls), (readonly(face), readonly(mask), np.array([fallback, delta]),
                                                   np.array(reach, np.int64))
                                 + ((occlusion,) if occlusion is not None else ()))
        return Processed(work, source, face, mask, hit, fallback, delta, reach, occlusion)

    def _composited(self, work: WorkingCrop, output: ModelOutput, masks: _Masks,
                    controls: CompositeControls, stage_key: tuple[str, tuple[str, float, float]]
                    ) -> tuple[np.ndarray, np.ndarray, bool]:
        """``(face, mask, fp32 fallback)`` of a model output on the working crop, the colour-matched face
        remembered under ``stage_key``."""
        colourspace, memos = self.settings.colourspace, self.memos

        def remembered(compute: Callable[[], np.ndarray]) -> np.ndarray:
            return memos.matched.get_or_compute(stage_key, compute) if memos is not None else compute()

        if isinstance(output, DeltaOutput):
            delta = output
            face, mask = composite_delta(work.linear, work.landmarks, delta, controls, lambda: remembered(
                lambda: readonly(delta_face(work.linear, delta, controls, colourspace.to_model,
                                            colourspace.from_model))), masks.parsed, masks.occlusion)
            return face, mask, bool(delta.fp32_fallback.any())
        classical = output
        face, mask = composite_face_crop(work.linear, work.landmarks, classical, controls,
                                         from_model=colourspace.from_model, matched=lambda: remembered(
                                             lambda: readonly(matched_face(work.linear, work.landmarks, classical,
                                                                           controls, colourspace.from_model))),
                                         parsed=masks.parsed, occlusion=masks.occlusion)
        return face, mask, False
