"""Rendering faces into a frame: model output (cached by content) plus the artist's compositing controls.

Convention:
    - ``pixels``: ``(H, W, C)`` float32 scene-linear plate (data window), channels in file order.
    - A ``FaceTarget`` says where a face is (its landmarks, detected on this frame or smoothed over its
      track). Each face's model input is cut from the original plate, so a face's model output depends
      only on (frame content, landmarks, models, model parameters) and is cached under a key of those.
    - Cached model outputs are stored at reduced precision; a freshly computed output goes through the
      same reduction before use, so cold and warm renders give identical pixels.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Protocol

import cv2
import numpy as np

from ..compositing.classical import composite_face_crop, matched_face
from ..compositing.classical_output import SwapModelOutput
from ..compositing.controls import CompositeControls, colour_stage_key
from ..compositing.delta import composite_delta, delta_face
from ..compositing.delta_output import DeltaOutput, is_delta_payload
from ..compositing.regions import soft_parsed_masks
from ..faces.dlib_models import DlibFaceModels
from ..faces.geometry import face_size
from ..faces.pose import head_pose
from ..faces.sources import SourceFace, choose_source
from ..plates.colour import ColourSpace
from ..store.memo import Memo
from ..swap import ALGORITHM_ID, SwapParams
from .stages import ClassicalSwapStage, Stage
from .composite import composite_face
from .crops import Box, exposure_scale, face_crop_box
from .stabilise import Neighbour, reliable_flow, stabilise_face

Payload = dict[str, np.ndarray]


class ModelCache(Protocol):
    """What ``render_faces`` needs of a cache: get and put payloads by key (see ``store.payload_cache``)."""

    def get(self, key: str) -> Payload | None: ...

    def put(self, key: str, payload: Payload) -> None: ...


@dataclass(frozen=True)
class NeighbourPlate:
    """A neighbouring frame of the same track, for temporal stabilisation: its plate around the face."""

    frame_hash: str
    landmarks: np.ndarray  # (68, 2) float32 smoothed landmarks on that frame
    crop: np.ndarray       # (h, w, 3) float32 scene-linear RGB of that frame's plate inside ``crop_box``
    crop_box: "Box"


@dataclass(frozen=True)
class FaceTarget:
    landmarks: np.ndarray                  # (68, 2) float32
    rect: tuple[float, float, float, float]
    track: int = -1                        # -1: detected on this frame, no track
    jitter: tuple[float, float] = (float("nan"), float("nan"))  # raw, smoothed
    neighbours: tuple[NeighbourPlate, ...] = ()


@dataclass(frozen=True)
class RenderSettings:
    """Everything besides pixels, faces and sources that decides a frame's result."""

    colourspace: ColourSpace = field(default_factory=ColourSpace)
    swap: SwapParams = field(default_factory=SwapParams)
    controls: CompositeControls = field(default_factory=CompositeControls)
    crop_margin: float = 0.6
    max_working_side: int = 1024
    quality_checks: bool = True
    stabilise: float = 0.0        # weight of each flow-warped neighbour face (0 = off)
    flow_threshold: float = 0.04  # largest grey difference (0..1) at which the flow is still trusted
    stage: Stage | None = None    # the model stage; None = the embedded classical swap with ``swap``

    @property
    def model_stage(self) -> Stage:
        return self.stage if self.stage is not None else ClassicalSwapStage(self.swap, ALGORITHM_ID)

    def model_key_material(self) -> str:
        """The settings that change model output (not the compositing controls)."""
        return json.dumps({"colourspace": self.colourspace.name, "swap": asdict(self.swap),
                           "stage": list(self.model_stage.model_ids),
                           "crop_margin": self.crop_margin, "max_working_side": self.max_working_side},
                          sort_keys=True, default=str)


@dataclass(frozen=True)
class FaceReport:
    index: int
    swapped: bool
    source_label: str
    box: tuple[float, float, float, float]
    pose: tuple[float, float, float]
    track: int = -1
    cache_hit: bool = False
    jitter: tuple[float, float] = (float("nan"), float("nan"))
    identity_distance: float = float("nan")        # output face -> its source
    identity_distance_plate: float = float("nan")  # plate face -> the same source
    fp32_fallback: bool = False                    # reduced precision failed; recomputed in fp32


@dataclass(frozen=True)
class FrameOutcome:
    pixels: np.ndarray
    faces: tuple[FaceReport, ...]
    timings_ms: dict[str, float]

    @property
    def faces_swapped(self) -> int:
        return sum(f.swapped for f in self.faces)


class Stopwatch:
    """Accumulates milliseconds per named stage."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.timings[stage] = self.timings.get(stage, 0.0) + (now - self._t) * 1000.0
        self._t = now


@dataclass(frozen=True)
class _WorkingCrop:
    box: Box
    linear: np.ndarray     # (h', w', 3) float32, exposure-normalised, finite, at working size
    landmarks: np.ndarray  # (68, 2) float32 in working-crop pixels
    scale: float           # exposure scale
    size: tuple[int, int]  # (w, h) of the crop in the frame


def _readonly(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


def _nbytes(value: object) -> int:
    arrays = value if isinstance(value, tuple) else (value,)
    return sum(a.nbytes for a in arrays if isinstance(a, np.ndarray))


@dataclass(frozen=True)
class RenderMemos:
    """In-memory memos shared by the renders of one server; every value is a pure function of its key, so
    a hit gives the same pixels as a miss (they only save time on the next frame or slider move).

    - ``working``: the exposure-normalised working-size plate crop, by (frame hash, box, working side).
    - ``matched``: the colour-matched face of a model output, by (model key, colour-stage controls).
    - ``composited``: a face's composited result at frame size, by (model key, controls); a neighbour's
      result is reused when the next frame is rendered.
    - ``plate_identity``: the identity embedding of a plate face (quality checks), by (frame, landmarks).
    """

    working: Memo[tuple[float, np.ndarray]]
    matched: Memo[np.ndarray]
    composited: Memo[tuple[np.ndarray, np.ndarray, np.ndarray]]
    plate_identity: Memo[np.ndarray]

    @classmethod
    def create(cls, budget_bytes: int = 768 * 1024**2) -> "RenderMemos":
        third = budget_bytes // 3
        return cls(Memo(third, _nbytes), Memo(third, _nbytes), Memo(third, _nbytes), Memo(1 << 16))


def _working_crop(crop: np.ndarray, box: Box, target_landmarks: np.ndarray, settings: RenderSettings,
                  crop_hash: str, memos: RenderMemos | None) -> _WorkingCrop:
    """``crop``: ``(h, w, 3)`` float32 linear RGB of the plate inside ``box`` of the frame ``crop_hash``."""
    h, w = crop.shape[:2]
    factor = min(1.0, settings.max_working_side / max(h, w))
    size = (max(1, round(w * factor)), max(1, round(h * factor)))

    def normalised() -> tuple[float, np.ndarray]:
        scale = exposure_scale(crop)
        clean = np.nan_to_num(crop, nan=0.0, posinf=scale, neginf=0.0) / np.float32(scale)
        if factor < 1.0:
            clean = cv2.resize(clean, size, interpolation=cv2.INTER_AREA)
        return scale, _readonly(np.ascontiguousarray(clean, np.float32))

    key = ("working", crop_hash, tuple(box), settings.max_working_side)
    scale, clean = memos.working.get_or_compute(key, normalised) if memos is not None else normalised()
    landmarks = target_landmarks - np.array([box.x0, box.y0], np.float32)
    if factor < 1.0:
        landmarks = (landmarks + 0.5) * np.array([size[0] / w, size[1] / h], np.float32) - 0.5
    return _WorkingCrop(box, clean, landmarks.astype(np.float32), scale, (w, h))


ModelOutput = SwapModelOutput | DeltaOutput


def model_key(frame_hash: str, key_base: str, source_hash: str, work: _WorkingCrop) -> str:
    """Content key of one face's model output (``source_hash`` empty when the stage takes no source)."""
    digest = hashlib.sha256()
    for part in (frame_hash, key_base, source_hash, repr(tuple(work.box)), repr(work.scale), repr(work.size)):
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    digest.update(np.ascontiguousarray(work.landmarks, np.float32).tobytes())
    return digest.hexdigest()


def output_from_payload(payload: Payload) -> ModelOutput:
    """The model output a cache payload holds (classical swap or aligned stage)."""
    return DeltaOutput.from_arrays(payload) if is_delta_payload(payload) else SwapModelOutput.from_arrays(payload)


def _parsed_masks(payload: Payload, work: _WorkingCrop) -> dict[str, np.ndarray] | None:
    """Soft parser masks of the crop's face parts, when the stage ran a face parser."""
    labels = payload.get("parser_labels")
    if labels is None:
        return None
    from ..models.onnx_parser import parser_region_masks

    hard = parser_region_masks(labels, labels.shape[:2])
    return soft_parsed_masks(hard, face_size(work.landmarks))


def _model_output(work: _WorkingCrop, source: SourceFace | None, settings: RenderSettings,
                  cache: ModelCache | None, key: str) -> tuple[ModelOutput, dict[str, np.ndarray] | None, bool]:
    if cache is not None:
        payload = cache.get(key)
        if payload is not None:
            return output_from_payload(payload), _parsed_masks(payload, work), True
    payload = settings.model_stage.run(settings.colourspace.to_model(work.linear), work.landmarks, source)
    if cache is not None:
        cache.put(key, payload)
    # through the same reduction as a cached payload: cold and warm renders give the same pixels
    return output_from_payload(payload), _parsed_masks(payload, work), False


@dataclass(frozen=True)
class _Processed:
    work: _WorkingCrop
    source: SourceFace | None
    face: np.ndarray   # (h, w, 3) float32 linear, frame-size crop
    mask: np.ndarray   # (h, w) float32
    hit: bool
    fp32_fallback: bool
    keeps_plate: bool  # an aligned stage: the face is the plate plus the model's change

    def change(self, crop: np.ndarray) -> np.ndarray:
        """What temporal stabilisation averages: the change to the plate for an aligned stage (the plate's
        own grain stays its own), the face itself for the classical swap (which replaces the plate)."""
        return self.face - _finite(crop) if self.keeps_plate else self.face


def _to_frame_size(face: np.ndarray, mask: np.ndarray, work: _WorkingCrop) -> tuple[np.ndarray, np.ndarray]:
    if face.shape[1::-1] == work.size:
        return face, mask
    face = cv2.resize(face, work.size, interpolation=cv2.INTER_CUBIC)
    mask = np.clip(cv2.resize(mask, work.size, interpolation=cv2.INTER_LINEAR), 0.0, 1.0)
    return face, mask


def render_faces(
    pixels: np.ndarray,
    rgb_index: list[int],
    targets: Sequence[FaceTarget],
    sources: Sequence[SourceFace],
    source_hashes: Sequence[str],
    settings: RenderSettings,
    models: DlibFaceModels,
    frame_hash: str,
    key_base: str,
    cache: ModelCache | None,
    clock: Stopwatch,
    memos: RenderMemos | None = None,
) -> FrameOutcome:
    """Swap each target face and composite it with the settings' controls; see the module docstring."""
    out = pixels.copy()
    reports = []
    hashes = dict(zip((id(s) for s in sources), source_hashes))
    frame_hw = pixels.shape[:2]

    def processed(crop: np.ndarray, box: Box, landmarks: np.ndarray, crop_hash: str) -> _Processed:
        work = _working_crop(crop, box, landmarks, settings, crop_hash, memos)
        source = choose_source(sources, landmarks) if settings.model_stage.needs_source else None
        source_hash = "" if source is None else hashes.get(id(source), source.label)
        key = model_key(crop_hash, key_base, source_hash, work)
        controls = settings.controls.validated()
        if memos is not None:
            done = memos.composited.get((key, controls))
            if done is not None:  # the model ran before: a cache hit
                return _Processed(work, source, done[0], done[1], True, bool(done[2][0]), bool(done[2][1]))
        output, parsed, hit = _model_output(work, source, settings, cache, key)
        stage_key = (key, colour_stage_key(controls))

        def remembered(compute: Callable[[], np.ndarray]) -> np.ndarray:
            return memos.matched.get_or_compute(stage_key, compute) if memos is not None else compute()

        if isinstance(output, DeltaOutput):
            face, mask = composite_delta(work.linear, work.landmarks, output, controls, lambda: remembered(
                lambda: _readonly(delta_face(work.linear, output, controls, settings.colourspace.to_model,
                                             settings.colourspace.from_model))), parsed)
            fallback = bool(output.fp32_fallback.any())
        else:
            face, mask = composite_face_crop(work.linear, work.landmarks, output, controls,
                                             from_model=settings.colourspace.from_model, matched=lambda: remembered(
                                                 lambda: _readonly(matched_face(work.linear, work.landmarks, output,
                                                                                controls,
                                                                                settings.colourspace.from_model))),
                                             parsed=parsed)
            fallback = False
        if isinstance(output, DeltaOutput) and face.shape[1::-1] != work.size:
            # an aligned stage's change is resized, not its face: the plate keeps its full-resolution detail
            change, mask = _to_frame_size((face - work.linear) * np.float32(work.scale), mask, work)
            face = _finite(crop) + change
        else:
            face, mask = _to_frame_size(face * np.float32(work.scale), mask, work)
        # no new highlights: the processed face never gets brighter than the brightest finite value of its crop
        finite = crop[np.isfinite(crop)]
        if finite.size:
            face = np.minimum(face, np.float32(finite.max()))
        if memos is not None:
            memos.composited.put((key, controls), (_readonly(face), _readonly(mask),
                                                   np.array([fallback, isinstance(output, DeltaOutput)])))
        return _Processed(work, source, face, mask, hit, fallback, isinstance(output, DeltaOutput))

    for index, target in enumerate(targets):
        box = face_crop_box(target.landmarks, frame_hw, settings.crop_margin)
        clock.lap("prepare")
        crop = pixels[box.slices][..., rgb_index]
        done = processed(crop, box, target.landmarks, frame_hash)
        face = done.face
        clock.lap("cache" if done.hit else "model")
        if settings.stabilise > 0.0 and target.neighbours:
            face = _stabilised(done, crop, box, target, settings, processed, frame_hw, frame_hash, cache)
            clock.lap("stabilise")
        written = composite_face(out, pixels, rgb_index, done.work.box, face, done.mask)
        clock.lap("composite")
        report = FaceReport(index=index, swapped=written > 0,
                            source_label=done.source.label if done.source is not None else "",
                            box=tuple(float(v) for v in target.rect), pose=head_pose(target.landmarks),
                            track=target.track, cache_hit=done.hit, jitter=target.jitter,
                            fp32_fallback=done.fp32_fallback)
        if settings.quality_checks:
            report = _with_identity(report, models, pixels, out, rgb_index, done.work.box, target, done.source,
                                    settings, frame_hash, memos)
            clock.lap("qc")
        reports.append(report)
    return FrameOutcome(pixels=out, faces=tuple(reports), timings_ms=clock.timings)


def _stabilised(done: _Processed, crop: np.ndarray, box: Box, target: FaceTarget,
                settings: RenderSettings, processed: Callable[..., _Processed], frame_hw: tuple[int, int],
                frame_hash: str, cache: ModelCache | None) -> np.ndarray:
    """Blend the face (what :meth:`_Processed.change` says) with its neighbours', carried along the
    plate's flow.

    The flow fields depend only on the plates, so they are cached like model outputs.
    """
    def grey(rgb: np.ndarray) -> np.ndarray:
        return cv2.cvtColor(np.ascontiguousarray(settings.colourspace.to_proxy8(rgb)), cv2.COLOR_RGB2GRAY)

    def flow_to(nb: NeighbourPlate, plate_n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        key = hashlib.sha256(f"flow|{frame_hash}|{nb.frame_hash}|{tuple(box)}|{settings.flow_threshold!r}|"
                             f"{settings.colourspace.name}".encode()).hexdigest()
        payload = cache.get(key) if cache is not None else None
        if payload is None:
            flow, reliability = reliable_flow(grey(crop), grey(plate_n), settings.flow_threshold)
            payload = {"flow": flow.astype(np.float16), "reliability": reliability.astype(np.float16)}
            if cache is not None:
                cache.put(key, payload)
        return payload["flow"].astype(np.float32), payload["reliability"].astype(np.float32)

    neighbours = []
    for nb in target.neighbours:
        cb = nb.crop_box
        if not (cb.x0 <= box.x0 and cb.y0 <= box.y0 and box.x1 <= cb.x1 and box.y1 <= cb.y1):
            continue  # the neighbour's stored plate does not cover this face's crop
        nbox = face_crop_box(nb.landmarks, frame_hw, settings.crop_margin)
        nbox = Box(max(nbox.x0, cb.x0), max(nbox.y0, cb.y0), min(nbox.x1, cb.x1), min(nbox.y1, cb.y1))
        ncrop = nb.crop[nbox.y0 - cb.y0:nbox.y1 - cb.y0, nbox.x0 - cb.x0:nbox.x1 - cb.x0]
        neighbour = processed(ncrop, nbox, nb.landmarks, nb.frame_hash)
        plate_n = nb.crop[box.y0 - cb.y0:box.y1 - cb.y0, box.x0 - cb.x0:box.x1 - cb.x0]
        flow, reliability = flow_to(nb, plate_n)
        neighbours.append(Neighbour(neighbour.change(ncrop), neighbour.mask, (nbox.x0 - box.x0, nbox.y0 - box.y0),
                                    flow, reliability))
    return stabilise_face(done.face, done.change(crop), done.mask, neighbours, settings.stabilise)


def _finite(crop: np.ndarray) -> np.ndarray:
    """The plate crop with non-finite values as 0 (a change there counts as none)."""
    return np.nan_to_num(crop, nan=0.0, posinf=0.0, neginf=0.0)


def _with_identity(report: FaceReport, models: DlibFaceModels, pixels: np.ndarray, out: np.ndarray,
                   rgb_index: list[int], box: Box, target: FaceTarget, source: SourceFace | None,
                   settings: RenderSettings, frame_hash: str, memos: RenderMemos | None) -> FaceReport:
    """Identity distances of the output's and the plate's face (in the crop) to ``source``; without a
    source (restoration), the output's distance to the plate's own face (how much identity it moved)."""
    offset = np.array([box.x0, box.y0], np.float32)
    rect = target.rect
    local = (rect[0] - box.x0, rect[1] - box.y0, rect[2] - box.x0, rect[3] - box.y0)

    def plate_embedding() -> np.ndarray:
        plate8 = np.ascontiguousarray(settings.colourspace.to_proxy8(pixels[box.slices][..., rgb_index]))
        return _readonly(np.asarray(models.embed(plate8, target.landmarks - offset)))

    key = ("plate-identity", frame_hash, tuple(box), settings.colourspace.name,
           np.asarray(target.landmarks, np.float32).tobytes())
    plate_id = memos.plate_identity.get_or_compute(key, plate_embedding) if memos is not None else plate_embedding()
    out8 = np.ascontiguousarray(settings.colourspace.to_proxy8(out[box.slices][..., rgb_index]))
    out_landmarks = models.landmarks(out8, local)
    out_id = models.embed(out8, out_landmarks)
    if source is None:
        return replace(report, identity_distance=float(np.linalg.norm(out_id - plate_id)))
    return replace(
        report,
        identity_distance=float(np.linalg.norm(out_id - source.embedding)),
        identity_distance_plate=float(np.linalg.norm(plate_id - source.embedding)),
    )


def detect_targets(pixels: np.ndarray, rgb_index: list[int], models: DlibFaceModels, colourspace: ColourSpace,
                   min_score: float, clock: Stopwatch) -> list[FaceTarget]:
    """Faces found on this frame alone (no shot analysis): whole-frame proxy, detector, landmarks."""
    proxy = colourspace.to_proxy8(pixels[..., rgb_index])
    clock.lap("proxy")
    targets = [FaceTarget(d.landmarks, d.rect) for d in models.detect(proxy) if d.score >= min_score]
    clock.lap("detect")
    return targets
