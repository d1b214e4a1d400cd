"""The engine behind the gRPC service: sessions, shot analysis and frames through the face pipeline.

It knows nothing about gRPC; ``service.py`` translates messages to the calls here and errors back.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..swap import ALGORITHM_ID
from ..faces.dlib_models import DlibFaceModels
from ..faces.errors import NoFaceError
from ..faces.sources import prepare_sources
from ..models.errors import ModelError
from ..models.pool import ModelPool
from ..models.registry import resolve_models_dir
from ..pipeline import preview as preview_module
from ..pipeline.crops import Box, face_crop_box
from ..pipeline.render import (FaceReport, FaceTarget, FrameOutcome, NeighbourPlate, RenderMemos, RenderSettings,
                               Stopwatch, detect_targets, render_faces)
from ..plates.colour import plate_colourspace, srgb_encode, to_uint8
from ..plates.errors import PlateError
from ..plates.image_file import Limits, Plate, decode_plate, encode_plate, read_plate, write_plate_atomic
from ..provenance import output_metadata, params_hash, sha256_hex
from ..pipeline.stages import AlignedSwapStage, ClassicalSwapStage, RestoreStage, Stage
from ..store.memo import Memo
from ..store.payload_cache import PayloadCache
from ..store.shot_db import ShotDatabase
from ..temporal.analyse import ShotAnalyser
from ..temporal.tracks import FaceSelection, TrackPath, build_paths
from .errors import InvalidRequest, ModelUnavailable, SourceError
from ..swap import SwapParams
from .sessions import Session, SessionParams, SessionRegistry

_LOG = logging.getLogger(__name__)

LINEAR_FORMATS = ("openexr", "hdr", "rla")
MIN_DETECTION_SCORE = 0.25  # HOG margin; real faces score ~0.3-2.8, badges and patterns ~0.1
PLATE_CROP_MARGIN = 1.0  # stored neighbour plates reach further than the render crop (0.6) plus smoothing offsets


@dataclass(frozen=True)
class FrameRequest:
    """One frame: encoded bytes (stream transport) or an input path, and where the result goes."""

    frame_number: int
    name: str
    data: bytes | bytearray | None = None
    input_path: str = ""
    output_path: str = ""


@dataclass(frozen=True)
class FrameResultData:
    frame_number: int
    status: str  # ok | warning | failed
    kind: str = ""
    message: str = ""
    faces: tuple[FaceReport, ...] = ()
    timings_ms: dict[str, float] = field(default_factory=dict)
    output: bytes | None = None
    output_path: str = ""
    analysed: bool = False

    @property
    def failed(self) -> bool:
        return self.status == "failed"


@dataclass(frozen=True)
class AnalyseResultData:
    frame_number: int
    status: str  # ok | failed
    kind: str = ""
    message: str = ""
    cut: int = 0
    keyframe: bool = False
    replayed: bool = False
    tracks: tuple[int, ...] = ()
    timings_ms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class PreviewData:
    """A reduced-size preview of one rendered frame (see ``pipeline.preview`` for the geometry).

    ``rendered`` and ``plate`` are ``(h, w, 3)`` float16 scene-linear R,G,B of ``box`` (None when not asked
    for, or when the frame failed); ``landmarks`` are the rendered faces' ``(68, 2)`` float32 data-window
    landmarks, in the order of ``faces``; ``labels`` is the region-label overlay (uint8, its own grid).
    """

    frame_number: int
    status: str  # ok | warning | failed
    kind: str = ""
    message: str = ""
    rendered: np.ndarray | None = None
    plate: np.ndarray | None = None
    box: Box = Box(0, 0, 0, 0)
    frame_hw: tuple[int, int] = (0, 0)
    faces: tuple[FaceReport, ...] = ()
    landmarks: tuple[np.ndarray, ...] = ()
    labels: np.ndarray | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    analysed: bool = False
    colourspace: str = ""


@dataclass(frozen=True)
class FrameSummaryData:
    """One analysed frame: its cut, whether it is a keyframe, the tracks on it and their landmark jitter
    (raw, smoothed; the largest over its tracks, NaN when unknown)."""

    frame_number: int
    cut: int
    keyframe: bool
    tracks: tuple[int, ...]
    jitter: tuple[float, float]


@dataclass(frozen=True)
class ShotSummary:
    """One shot of the shot database: its analysed frames, tracks and cuts."""

    shot: str
    frames: tuple[int, ...]
    tracks: tuple[int, ...]
    cuts: int
    keyframes: int
    created: float
    per_frame: tuple[FrameSummaryData, ...] = ()


@dataclass(frozen=True)
class _Rendered:
    outcome: FrameOutcome
    targets: list[FaceTarget]
    analysed: bool
    settings: RenderSettings
    rgb_index: list[int]


PREVIEW_CONTROLS = ("blend", "regions", "feather", "erode", "grain", "colour_match", "smoothing", "stabilise",
                    "flow_threshold", "face", "quality_checks")
"""The SessionParams fields a preview may set; the rest (models, mode, colourspace) are the session's."""


def source_rgb8(plate: Plate) -> np.ndarray:
    """Display-referred ``(H, W, 3)`` uint8 view of a source photo (grey replicated, EXR treated as linear)."""
    names = plate.channel_names
    if all(c in names for c in "RGB"):
        rgb = plate.pixels[..., plate.channel_index(("R", "G", "B"))]
    elif plate.pixels.shape[2] in (1, 2):
        rgb = np.repeat(plate.pixels[..., :1], 3, axis=2)
    else:
        raise PlateError("channels", f"no R,G,B channels (has {','.join(names)})")
    if plate.format_name.lower() in LINEAR_FORMATS:
        rgb = srgb_encode(rgb)
    return np.ascontiguousarray(to_uint8(rgb))


def content_hash(pixels: np.ndarray, rgb_index: list[int]) -> str:
    """sha256 of the frame's R, G, B values (float32): what the analysis and the model outputs depend on."""
    rgb = np.ascontiguousarray(pixels[..., rgb_index], np.float32)
    return hashlib.sha256(memoryview(rgb).cast("B")).hexdigest()


def frame_status(outcome: FrameOutcome, where: str, unchanged: str) -> tuple[str, str, str]:
    """``(status, kind, message)`` of a rendered frame: ok, or a warning when no face was changed."""
    if outcome.faces_swapped:
        return "ok", "", ""
    if outcome.faces:
        return "warning", "not_swapped", f"{where}: face(s) found but none was changed"
    return "warning", "no_face", f"{where}: no face found; {unchanged}"


class FaceSwapEngine:
    """Holds the loaded models, the open sessions, the shot database, the model cache and a scratch folder.

    Args:
        scratch_dir: where encoded frames are staged for OpenImageIO (a RAM-backed folder is best).
        cache_dir: the shot database and cached model outputs (shared by processes that use it).
        limits: the largest frames accepted.
        models: preloaded models (tests share one instance); loaded on first use otherwise.
        models_dir: where model files are found (default: ``resolve_models_dir``'s precedence).
        device: the resolved device neural models run on.
        slow_cpu_precision: see :class:`~inference_server.models.pool.ModelPool`.
    """

    def __init__(
        self,
        scratch_dir: Path,
        cache_dir: Path,
        limits: Limits = Limits(),
        models: DlibFaceModels | None = None,
        max_sessions: int = 64,
        max_frame_bytes: int = 2 * 1024**3,
        cache_bytes: int = 20 * 1024**3,
        memory_bytes: int = 1024**3,
        models_dir: Path | None = None,
        device: str = "cpu",
        slow_cpu_precision: bool = False,
    ) -> None:
        self.scratch_dir = Path(scratch_dir)
        self.limits = limits
        self.max_frame_bytes = max_frame_bytes
        self.sessions = SessionRegistry(max_sessions)
        self.db = ShotDatabase(Path(cache_dir) / "shots.sqlite")
        self.cache = PayloadCache(Path(cache_dir) / "payloads", self.db, cache_bytes, memory_bytes)
        self.pool = ModelPool(models_dir if models_dir is not None else resolve_models_dir(None, os.environ),
                              Path(cache_dir), device, slow_cpu_precision)
        self._models = models
        self._models_lock = threading.Lock()
        self._paths: Memo[dict[int, TrackPath]] = Memo(16)
        self._frame_hashes: Memo[str] = Memo(1 << 16)
        self.memos = RenderMemos.create(memory_bytes)
        self._preview_plates: Memo[tuple[Plate, str]] = Memo(memory_bytes // 4, lambda v: v[0].pixels.nbytes)

    @property
    def models(self) -> DlibFaceModels:
        with self._models_lock:
            if self._models is None:
                self._models = DlibFaceModels()
            return self._models

    def model_ids(self) -> list[str]:
        """The embedded default's ids (detector/landmarks/embedding, classical swap)."""
        return [self.models.identifier, ALGORITHM_ID]

    def _stage(self, params: SessionParams) -> tuple[Stage, tuple[str, ...]]:
        """The model stage for the session's mode and model choices, and notes about the models."""
        try:
            restorer = swapper = parser = None
            if params.parser.strip().lower() != "none":
                parser = self.pool.load("parser", params.parser, params.allow_unverified)
            if "restore" in params.mode:
                restorer = self.pool.load("restorer", params.restorer, params.allow_unverified, params.precision)
            if "swap" in params.mode:
                swapper = self.pool.load("swapper", params.swapper, params.allow_unverified, params.precision)
        except (ModelError, ValueError, OSError) as exc:
            raise ModelUnavailable(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc
        notes = tuple(n for loaded in (swapper, restorer, parser) if loaded is not None for n in loaded.notes)
        restore = restorer.adapter if restorer is not None else None
        labels = parser.adapter if parser is not None else None
        if swapper is None:
            assert restore is not None
            return RestoreStage(restore, labels), notes  # type: ignore[arg-type]
        if swapper.adapter is None:
            return ClassicalSwapStage(SwapParams(), ALGORITHM_ID, restore, labels), notes  # type: ignore[arg-type]
        return AlignedSwapStage(swapper.adapter, restore, labels), notes  # type: ignore[arg-type]

    # -- sessions ---------------------------------------------------------------------------------
    def _decode_source(self, label: str, data: bytes) -> np.ndarray:
        try:
            return source_rgb8(decode_plate(data, label, self.scratch_dir, self.limits))
        except PlateError as exc:
            raise SourceError(f"source '{label}': {exc}") from exc

    def open_session(
        self, client: str, shot: str, sources: list[tuple[str, bytes]], params: SessionParams,
        face_reference: tuple[str, bytes] | None = None,
    ) -> Session:
        """Validate parameters, decode the source images and find their faces; register the session."""
        params = params.validated()
        if params.colorspace:
            try:
                plate_colourspace(params.colorspace, None)
            except PlateError as exc:
                raise InvalidRequest(str(exc)) from exc
        stage, notes = self._stage(params)
        images = [(label, self._decode_source(label, data)) for label, data in sources]
        try:
            prepared = prepare_sources(images, self.models)
            reference = None
            if params.face == "ref":
                if face_reference is None:
                    raise InvalidRequest("face selection 'ref' needs a reference image")
                (ref,) = prepare_sources([(face_reference[0], self._decode_source(*face_reference))],
                                                     self.models)
                reference = ref.embedding.astype(np.float32)
        except NoFaceError as exc:
            raise SourceError(f"source '{exc.label}': no face found") from exc
        hashes = [sha256_hex(data) for _, data in sources]
        model_ids = [self.models.identifier, *stage.model_ids]
        extra = [sha256_hex(face_reference[1])] if reference is not None and face_reference else []
        session = Session(
            id=SessionRegistry.new_id(),
            client=client,
            shot=shot or f"session-{SessionRegistry.new_id()[:12]}",
            params=params,
            sources=prepared,
            source_hashes=hashes,
            params_hash=params_hash(params.as_dict(), hashes + extra, model_ids),
            model_ids=model_ids,
            face_reference=reference,
            stage=stage,
            notes=notes,
        )
        self.sessions.add(session)
        return session

    # -- frames -----------------------------------------------------------------------------------
    def _load(self, request: FrameRequest) -> tuple[Plate, str]:
        """The decoded plate and the sha256 of its encoded bytes (the key of its remembered content hash)."""
        if request.data is not None:
            digest = hashlib.sha256(request.data).hexdigest()
            return decode_plate(request.data, request.name, self.scratch_dir, self.limits), digest
        try:
            digest = hashlib.sha256(Path(request.input_path).read_bytes()).hexdigest()
        except OSError:
            digest = ""  # read_plate reports the problem
        return read_plate(request.input_path, self.limits), digest

    def _content_hash(self, plate: Plate, file_digest: str) -> str:
        """``content_hash`` of the plate, remembered by the digest of the file it was decoded from."""
        rgb_index = plate.channel_index(("R", "G", "B"))
        if not file_digest:
            return content_hash(plate.pixels, rgb_index)
        key = (file_digest, tuple(rgb_index))
        return self._frame_hashes.get_or_compute(key, lambda: content_hash(plate.pixels, rgb_index))

    def analyser(self, session: Session) -> ShotAnalyser:
        """A fresh analyser for one AnalyseShot stream of ``session``'s shot."""
        return ShotAnalyser(self.db, session.shot, self.models, session.params.analyse_config())

    def analyse_frame(self, session: Session, analyser: ShotAnalyser, request: FrameRequest) -> AnalyseResultData:
        """Analyse one frame of the shot (frames in increasing order); failures name file, frame and cause."""
        where = f"{request.name} (frame {request.frame_number})"
        clock = Stopwatch()
        try:
            plate, digest = self._load(request)
            clock.lap("decode")
            rgb_index = plate.channel_index(("R", "G", "B"))
            colourspace = plate_colourspace(session.params.colorspace, plate.spec.get_string_attribute("oiio:ColorSpace"))
            proxy = np.ascontiguousarray(colourspace.to_proxy8(plate.pixels[..., rgb_index]))
            frame_hash = self._content_hash(plate, digest)
            clock.lap("proxy")
            result = analyser.analyse(request.frame_number, proxy, frame_hash)
            clock.lap("analyse")
            for obs in result.observations:
                self._store_plate_crop(plate.pixels, rgb_index, frame_hash, obs.landmarks)
            clock.lap("store")
        except PlateError as exc:
            return AnalyseResultData(request.frame_number, "failed", exc.kind, f"{where}: {exc}")
        except ValueError as exc:
            return AnalyseResultData(request.frame_number, "failed", "order", f"{where}: {exc}")
        return AnalyseResultData(request.frame_number, "ok", cut=result.cut, keyframe=result.keyframe,
                                 replayed=result.replayed, tracks=tuple(o.track for o in result.observations),
                                 timings_ms=clock.timings)

    @staticmethod
    def _plate_crop_key(frame_hash: str, box: Box) -> str:
        return hashlib.sha256(f"plate-crop|{frame_hash}|{tuple(box)}".encode()).hexdigest()

    def _store_plate_crop(self, pixels: np.ndarray, rgb_index: list[int], frame_hash: str, landmarks: np.ndarray) -> None:
        """Keep the plate around an analysed face, so neighbouring frames can be stabilised against it."""
        box = face_crop_box(landmarks, pixels.shape[:2], PLATE_CROP_MARGIN)
        key = self._plate_crop_key(frame_hash, box)
        if not self.cache.contains(key):
            self.cache.put(key, {"rgb": np.ascontiguousarray(pixels[box.slices][..., rgb_index], np.float32)})

    def _neighbours(self, session: Session, paths: dict[int, TrackPath], track: int, frame: int,
                    frame_hw: tuple[int, int]) -> tuple[NeighbourPlate, ...]:
        """The stored plates of ``frame``'s neighbours on ``track`` (PlateError when one is missing)."""
        neighbours = []
        for n in (frame - 1, frame + 1):
            landmarks = paths[track].landmarks(n)
            record = self.db.frame_record(session.shot, n)
            raw = [o for o in self.db.frame_observations(session.shot, n) if o.track == track]
            if landmarks is None or record is None or not raw:
                continue
            box = face_crop_box(raw[0].landmarks, frame_hw, PLATE_CROP_MARGIN)
            payload = self.cache.get(self._plate_crop_key(record[0], box))
            if payload is None:
                raise PlateError("analysis", f"the stored plate of frame {n} is missing (evicted or analysed by an "
                                             "older version); analyse the shot again")
            neighbours.append(NeighbourPlate(record[0], landmarks, payload["rgb"], box))
        return tuple(neighbours)

    def _track_paths(self, shot: str, sigma: float) -> dict[int, TrackPath]:
        """The shot's smoothed track paths, remembered until its analysis changes."""
        key = (shot, sigma, self.db.analysis_fingerprint(shot))
        return self._paths.get_or_compute(key, lambda: build_paths(self.db.observations(shot), sigma))

    def _tracked_targets(self, session: Session, frame: int, frame_hw: tuple[int, int],
                         params: SessionParams | None = None) -> list[FaceTarget]:
        params = params if params is not None else session.params
        paths = self._track_paths(session.shot, params.smoothing)
        present = [t for t, p in paths.items() if p.landmarks(frame) is not None]
        selection = FaceSelection.parse(params.face, session.face_reference)
        rects = {o.track: o.rect for o in self.db.frame_observations(session.shot, frame)}
        targets = []
        for track in selection.choose(present, self.db.tracks(session.shot)):
            landmarks = paths[track].landmarks(frame)
            assert landmarks is not None
            lo, hi = landmarks.min(axis=0), landmarks.max(axis=0)
            rect = rects.get(track, (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])))
            neighbours = (self._neighbours(session, paths, track, frame, frame_hw)
                          if params.stabilise > 0.0 else ())
            targets.append(FaceTarget(landmarks, rect, track, paths[track].jitter_at(frame), neighbours))
        return targets

    def _render(self, session: Session, params: SessionParams, plate: Plate, digest: str, frame_number: int,
                clock: Stopwatch) -> _Rendered:
        """The frame through the face pipeline with ``params`` (the one render path of process and preview)."""
        if session.stage is not None and session.stage.needs_source and not session.sources:
            raise PlateError("session", f"mode '{params.mode}' needs a source image and this session has none "
                                        "(opened for analysis only?)")
        rgb_index = plate.channel_index(("R", "G", "B"))
        settings = RenderSettings(
            colourspace=plate_colourspace(params.colorspace, plate.spec.get_string_attribute("oiio:ColorSpace")),
            controls=params.controls(),
            quality_checks=params.quality_checks,
            stabilise=params.stabilise,
            flow_threshold=params.flow_threshold,
            stage=session.stage,
        )
        frame_hash = self._content_hash(plate, digest)
        clock.lap("hash")
        record = self.db.frame_record(session.shot, frame_number)
        analysed = record is not None and record[0] == frame_hash
        if analysed:
            targets = self._tracked_targets(session, frame_number, plate.pixels.shape[:2], params)
            clock.lap("tracks")
        else:
            targets = detect_targets(plate.pixels, rgb_index, self.models, settings.colourspace,
                                     MIN_DETECTION_SCORE, clock)
        key_base = hashlib.sha256("|".join([*session.model_ids, self.models.weights_hash(),
                                            settings.model_key_material()]).encode()).hexdigest()
        outcome = render_faces(plate.pixels, rgb_index, targets, session.sources, session.source_hashes, settings,
                               self.models, frame_hash, key_base, self.cache, clock, self.memos)
        return _Rendered(outcome, targets, analysed, settings, rgb_index)

    # -- previews ---------------------------------------------------------------------------------
    @staticmethod
    def preview_params(session: Session, overrides: SessionParams | None) -> SessionParams:
        """The session's parameters with the compositing and temporal controls of ``overrides``
        (``PREVIEW_CONTROLS``); InvalidRequest for a bad value."""
        if overrides is None:
            return session.params
        params = replace(session.params, **{name: getattr(overrides, name) for name in PREVIEW_CONTROLS})
        params = params.validated()
        try:
            FaceSelection.parse(params.face, session.face_reference)
        except ValueError as exc:
            raise InvalidRequest(f"{exc} (this session has no reference identity)") from exc
        return params

    def _load_remembered(self, request: FrameRequest) -> tuple[Plate, str]:
        """``_load``, remembered for the next preview of the same file (by path, size and mtime) or bytes."""
        if request.data is not None:
            key: tuple[object, ...] = ("data", hashlib.sha256(request.data).hexdigest())
        else:
            try:
                stat = os.stat(request.input_path)
                key = ("path", os.path.abspath(request.input_path), stat.st_size, stat.st_mtime_ns)
            except OSError:
                return self._load(request)  # read_plate reports the problem
        hit = self._preview_plates.get(key)
        return hit if hit is not None else self._preview_plates.put(key, self._load(request))

    def preview_frame(self, session: Session, request: FrameRequest, max_side: int = 0, region: str = "faces",
                      params: SessionParams | None = None, include_rendered: bool = True,
                      include_plate: bool = False, include_regions: bool = False) -> PreviewData:
        """Render one frame as ``process_frame`` does (same path, same pixels) and return reduced-size images
        of ``region`` (``faces`` | ``frame``) instead of writing a file; failures name file, frame and cause.

        Args:
            params: controls for this preview (``preview_params``); None = the session's.
        """
        where = f"{request.name} (frame {request.frame_number})"
        if region not in ("faces", "frame"):
            raise InvalidRequest(f"preview region '{region}' (expected faces or frame)")
        params = self.preview_params(session, params)
        clock = Stopwatch()
        try:
            plate, digest = self._load_remembered(request)
            clock.lap("decode")
            rendered = self._render(session, params, plate, digest, request.frame_number, clock)
        except PlateError as exc:
            return PreviewData(request.frame_number, "failed", exc.kind, f"{where}: {exc}", timings_ms=clock.timings)
        frame_hw = plate.pixels.shape[:2]
        landmarks = tuple(np.asarray(t.landmarks, np.float32) for t in rendered.targets)
        if region == "frame":
            box = Box(0, 0, frame_hw[1], frame_hw[0])
        else:
            # every face of the frame, whatever the selection: two parameter sets get the same geometry
            observed = [o.landmarks for o in self.db.frame_observations(session.shot, request.frame_number)]
            box = preview_module.faces_region(observed if rendered.analysed else list(landmarks), frame_hw,
                                              rendered.settings.crop_margin)
        size = preview_module.preview_size(box, max_side)
        out = rendered.outcome
        image = preview_module.reduce_rgb(out.pixels, rendered.rgb_index, box, size) if include_rendered else None
        plate_image = (preview_module.reduce_rgb(plate.pixels, rendered.rgb_index, box, size)
                       if include_plate else None)
        labels = preview_module.region_labels(landmarks, box, size) if include_regions else None
        clock.lap("preview")
        status, kind, message = frame_status(out, where, "plate shown unchanged")
        return PreviewData(request.frame_number, status, kind, message, image, plate_image, box, frame_hw,
                           out.faces, landmarks, labels, clock.timings, rendered.analysed,
                           rendered.settings.colourspace.name)

    def shot_summaries(self, shot: str = "", with_frames: bool = False, smoothing: float = 2.0) -> list[ShotSummary]:
        """The shots of the shot database (or just ``shot``, when it exists), with per-frame summaries on request."""
        names = [s for s in self.db.shots() if not shot or s == shot]
        summaries = []
        for name in names:
            frames = self.db.analysed_frames(name)
            keyframes = set(self.db.keyframes(name))
            tracks = self.db.tracks(name)
            created = self.db.analysis_fingerprint(name)[0]
            per_frame: list[FrameSummaryData] = []
            if with_frames and frames:
                paths = self._track_paths(name, smoothing)
                for frame in sorted(frames):
                    on = tuple(t for t, p in sorted(paths.items()) if p.landmarks(frame) is not None)
                    jitters = [paths[t].jitter_at(frame) for t in on]
                    raw = [j[0] for j in jitters if np.isfinite(j[0])]
                    smooth = [j[1] for j in jitters if np.isfinite(j[1])]
                    per_frame.append(FrameSummaryData(frame, frames[frame][1], frame in keyframes, on,
                                                      (max(raw, default=float("nan")),
                                                       max(smooth, default=float("nan")))))
            summaries.append(ShotSummary(name, tuple(sorted(frames)), tuple(sorted(tracks)),
                                         len({c for _, c in frames.values()}), len(keyframes), created,
                                         tuple(per_frame)))
        return summaries

    def process_frame(self, session: Session, request: FrameRequest) -> FrameResultData:
        """Process one frame; every failure becomes a failed result naming file, frame and cause."""
        where = f"{request.name} (frame {request.frame_number})"
        try:
            result = self._process(session, request)
        except PlateError as exc:
            result = FrameResultData(request.frame_number, "failed", exc.kind, f"{where}: {exc}")
        except Exception as exc:  # noqa: BLE001 - one frame's bug must not end the stream
            _LOG.exception("frame %s failed", where)
            result = FrameResultData(request.frame_number, "failed", "internal", f"{where}: internal error: {exc}")
        session.count(result.failed)
        return result

    def _process(self, session: Session, request: FrameRequest) -> FrameResultData:
        where = f"{request.name} (frame {request.frame_number})"
        clock = Stopwatch()
        plate, digest = self._load(request)
        clock.lap("decode")
        params = session.params
        rendered = self._render(session, params, plate, digest, request.frame_number, clock)
        outcome, analysed = rendered.outcome, rendered.analysed
        metadata = output_metadata(params.mode, session.model_ids, session.params_hash, session.source_hashes)
        status, kind, message = frame_status(outcome, where, "plate passed through unchanged")
        output: bytes | None = None
        if request.data is not None:
            output = encode_plate(plate, outcome.pixels, metadata, params.output_format, self.scratch_dir)
        else:
            write_plate_atomic(request.output_path, plate, outcome.pixels, metadata)
        clock.lap("encode")
        return FrameResultData(
            request.frame_number, status, kind, message, outcome.faces, clock.timings, output,
            "" if output is not None else request.output_path, analysed,
        )
