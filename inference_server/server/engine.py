"""The engine behind the gRPC service: sessions, shot analysis and frames through the face pipeline.

It knows nothing about gRPC; ``service.py`` translates messages to the calls here and errors back. The
engine is a façade over its parts: the frame loader (:mod:`.frame_io`), the faces to render on analysed
shots (:mod:`.shot_targets`), the model pool and the session's model stage (:mod:`.model_stages`), and
the face pipeline (:mod:`inference_server.pipeline.render`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from facebridge import schema

from ..faces.dlib_models import DlibFaceModels
from ..faces.errors import NoFaceError
from ..faces.finder import FaceFinder
from ..faces.sources import prepare_sources
from ..models.pool import ModelPool
from ..models.registry import resolve_models_dir
from ..pipeline import preview as preview_module
from ..pipeline.crops import Box
from ..pipeline.frames import FaceReport, FrameOutcome, FramePlate
from ..pipeline.memos import RenderMemos
from ..pipeline.render import RenderRequest, RenderServices, render_faces
from ..pipeline.settings import RenderSettings
from ..pipeline.stages import with_paste
from ..pipeline.targets import FaceTarget, detect_targets
from ..pipeline.timing import Stopwatch
from ..plates.colour import plate_colourspace
from ..plates.encoded_file import EncodedFile
from ..plates.errors import PlateError
from ..plates.image_file import Limits, Plate
from ..provenance import output_metadata, params_hash, sha256_hex
from ..store.analysis_file import AnalysisInvalid, ShotAnalysisData, export_analysis, parse_analysis
from ..store.payload_cache import PayloadCache
from ..store.shot_db import ShotDatabase
from ..temporal.analyse import NotInAnalysis, ShotAnalyser
from ..temporal.tracks import FaceSelection
from .analysis_steps import AnalyseResultData, FrameAnalysisSteps
from .analysis_stream import ANALYSIS_AHEAD, analyse_in_order
from .errors import InvalidRequest, ServerBusy, ShotNotFound, SourceError
from .file_roots import FileRoots
from .frame_io import FrameLoader, FrameRequest, deliver
from .model_stages import choose_finder, choose_stage
from .sessions import Session, SessionParams, SessionRegistry, session_analyse_config
from .shot_targets import ShotSummary, ShotTargets
from .warmup import WarmImports

__all__ = ["PREVIEW_CONTROLS", "AnalyseResultData", "FaceSwapEngine", "FrameRequest", "FrameResultData",
           "PreviewData", "ShotSummary", "frame_status"]

_LOG = logging.getLogger(__name__)

MIN_DETECTION_SCORE = 0.25  # HOG margin; real faces score ~0.3-2.8, badges and patterns ~0.1


@dataclass(frozen=True)
class FrameResultData:
    frame_number: int
    status: str  # ok | warning | failed
    kind: str = ""
    message: str = ""
    faces: tuple[FaceReport, ...] = ()
    timings_ms: dict[str, float] = field(default_factory=dict)
    output: EncodedFile | None = None  # stream transport: the encoded result
    output_path: str = ""
    analysed: bool = False

    @property
    def failed(self) -> bool:
        return self.status == "failed"


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
class _Rendered:
    outcome: FrameOutcome
    targets: list[FaceTarget]
    analysed: bool
    settings: RenderSettings
    rgb_index: list[int]


PREVIEW_CONTROLS = schema.PREVIEW_SETTINGS + ("quality_checks",)
"""The SessionParams fields a preview may set (the schema's composite and temporal settings, and the wire-only
QC switch); the rest (models, mode, colourspace, analysis) are the session's."""


def frame_status(outcome: FrameOutcome, where: str, unchanged: str) -> tuple[str, str, str]:
    """``(status, kind, message)`` of a rendered frame: ok, or a warning when faces were left as the plate
    for being small (``small_face``, saying which and why) or no face was changed."""
    if outcome.skipped:
        return "warning", "small_face", f"{where}: " + "; ".join(outcome.skipped)
    if outcome.faces_swapped:
        return "ok", "", ""
    if outcome.faces:
        return "warning", "not_swapped", f"{where}: face(s) found but none was changed"
    return "warning", "no_face", f"{where}: no face found; {unchanged}"


@dataclass(frozen=True)
class MemoryShares:
    """How the server's one memory budget (``serve --memory-budget``) is divided between its in-memory caches.

    - ``payloads`` (40 %): decoded model outputs in front of the disk cache (``PayloadCache``).
    - ``memos`` (45 %): the render memos (``RenderMemos``: working crops, colour-matched faces, composited
      neighbours, a third each).
    - ``preview_plates`` (15 %): decoded plates remembered for the next preview of the same file.

    Each share is an LRU bounded by the bytes of its arrays; together they never exceed the budget (beyond
    one entry each: an LRU always keeps its newest entry). Not in the budget: the loaded models, and frames
    in flight (at most ``max_streams`` x (2 announced + ``frame_workers`` in work) frames, each under
    ``max_frame_bytes`` encoded and ``Limits.max_decode_bytes`` decoded).
    """

    payloads: int
    memos: int
    preview_plates: int

    @classmethod
    def of(cls, budget: int) -> "MemoryShares":
        payloads, memos = budget * 40 // 100, budget * 45 // 100
        return cls(payloads, memos, budget - payloads - memos)


class FaceSwapEngine:
    """Holds the loaded models, the open sessions, the shot database, the model cache and a scratch folder.

    Args:
        scratch_dir: where encoded frames are staged for OpenImageIO (a RAM-backed folder is best).
        cache_dir: the shot database and cached model outputs (shared by processes that use it).
        limits: the largest frames accepted.
        max_sessions, max_sessions_per_peer, session_idle_s: see :class:`SessionRegistry`.
        max_frame_bytes: the largest encoded frame a stream may announce.
        memory_bytes: the in-memory caches' one budget, divided by :class:`MemoryShares`.
        models: preloaded models (tests share one instance); loaded on first use otherwise.
        models_dir: where model files are found (default: ``resolve_models_dir``'s precedence).
        device: the resolved device neural models run on.
        slow_cpu_precision: see :class:`~inference_server.models.pool.ModelPool`.
        roots: the folders the path transport may read and write (:class:`FileRoots`; none: not offered).
        allow_unverified: sessions may ask for model files that do not verify (``serve --allow-unverified``).
    """

    def __init__(
        self,
        scratch_dir: Path,
        cache_dir: Path,
        limits: Limits = Limits(),
        models: DlibFaceModels | None = None,
        max_sessions: int = 64,
        max_frame_bytes: int = 1024**3,
        cache_bytes: int = 20 * 1024**3,
        memory_bytes: int = 1024**3,
        models_dir: Path | None = None,
        device: str = "cpu",
        slow_cpu_precision: bool = False,
        max_sessions_per_peer: int | None = None,
        session_idle_s: float = 3600.0,
        roots: FileRoots | None = None,
        allow_unverified: bool = False,
    ) -> None:
        self.memory = MemoryShares.of(memory_bytes)
        self.db = ShotDatabase(Path(cache_dir) / "shots.sqlite")
        self.frames = FrameLoader(Path(scratch_dir), limits, self.memory.preview_plates, roots, max_frame_bytes,
                                  files=self.db)
        self.max_frame_bytes = max_frame_bytes
        self.sessions = SessionRegistry(max_sessions, max_sessions_per_peer, session_idle_s)
        self.cache = PayloadCache(Path(cache_dir) / "payloads", self.db, cache_bytes, self.memory.payloads)
        self.shots = ShotTargets(self.db, self.cache)
        self.pool = ModelPool(models_dir if models_dir is not None else resolve_models_dir(None, os.environ),
                              Path(cache_dir), device, slow_cpu_precision, allow_unverified)
        self.memos = RenderMemos.create(self.memory.memos)
        self._models = models
        self._models_lock = threading.Lock()
        self._warm_imports = WarmImports()

    @property
    def scratch_dir(self) -> Path:
        return self.frames.scratch_dir

    @property
    def limits(self) -> Limits:
        return self.frames.limits

    @property
    def models(self) -> DlibFaceModels:
        with self._models_lock:
            if self._models is None:
                self._models = DlibFaceModels()
            return self._models

    def close_models(self) -> None:
        """Stop what the embedded models run beside the server (the identity embedding's process)."""
        with self._models_lock:
            if self._models is not None:
                self._models.close()

    def finder(self, session: Session) -> FaceFinder:
        """The session's face detector and landmarker (the embedded dlib models unless others were chosen)."""
        return session.finder if session.finder is not None else self.models

    # -- sessions ---------------------------------------------------------------------------------
    def open_session(
        self, client: str, shot: str, sources: list[tuple[str, bytes]], params: SessionParams,
        face_reference: tuple[str, bytes] | None = None, peer: str = "",
    ) -> Session:
        """Validate parameters, decode the source images and find their faces (a photo seen before, by this server
        or one before it on the same cache, is not searched again: ``prepare_sources``); register the session."""
        params = params.validated()
        if params.colorspace:
            try:
                plate_colourspace(params.colorspace, None)
            except PlateError as exc:
                raise InvalidRequest(str(exc)) from exc
        stage, notes = choose_stage(self.pool, params)
        found_by = choose_finder(self.pool, params, self.models)
        images = [(label, self.frames.decode_source(label, data)) for label, data in sources]
        try:
            models_id = f"{self.models.identifier}|{self.models.weights_hash(self.db)}"
            prepared = prepare_sources(images, self.models, self.cache, models_id)
            reference = None
            if params.face == "ref":
                if face_reference is None:
                    raise InvalidRequest("face selection 'ref' needs a reference image")
                (ref,) = prepare_sources([(face_reference[0], self.frames.decode_source(*face_reference))],
                                         self.models, self.cache, models_id)
                reference = ref.embedding.astype(np.float32)
        except NoFaceError as exc:
            raise SourceError(f"source '{exc.label}': no face found") from exc
        hashes = [sha256_hex(data) for _, data in sources]
        model_ids = [self.models.identifier, *found_by.model_ids, *stage.model_ids]
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
            notes=notes + found_by.notes,
            peer=peer,
            finder=found_by.finder,
            finder_ids=(found_by.detector_id, found_by.landmarker_id),
        )
        self.sessions.add(session)
        return session

    # -- analysis ---------------------------------------------------------------------------------
    def analyser(self, session: Session) -> ShotAnalyser:
        """A fresh analyser for one AnalyseShot stream of ``session``'s shot (replaying only, after an import)."""
        try:
            return ShotAnalyser(self.db, session.shot, self.finder(session), session_analyse_config(session),
                                replay_only=session.analysis_imported)
        except NotInAnalysis as exc:
            raise InvalidRequest(f"{exc}; import the shot-analysis file again") from exc

    def export_analysis(self, shot: str) -> bytes:
        """The shot-analysis file of ``shot`` (ShotNotFound when the shot database has no analysis of it)."""
        data = export_analysis(self.db, shot, self.models.identifier)
        if data is None:
            raise ShotNotFound(f"the shot database has no analysis of shot '{shot}'")
        return data

    def import_analysis(self, session: Session, data: bytes | bytearray) -> ShotAnalysisData:
        """Replace the analysis of ``session``'s shot with a shot-analysis file's, validated in full first
        (InvalidRequest naming the cause: malformed, another shot, other settings, another analyser);
        afterwards the session's analyses only replay it."""
        expected = session_analyse_config(session).as_dict()
        try:
            analysis = parse_analysis(data, expected)
        except AnalysisInvalid as exc:
            raise InvalidRequest(f"shot-analysis file: {exc}") from exc
        if analysis.shot != session.shot:
            raise InvalidRequest(f"the shot-analysis file is for shot '{analysis.shot}', not '{session.shot}'")
        if analysis.settings != expected:
            differ = sorted(k for k in expected if analysis.settings.get(k) != expected[k])
            raise InvalidRequest(f"the shot-analysis file of shot '{analysis.shot}' was made with other analysis "
                                 f"settings ({', '.join(f'{k} {analysis.settings[k]}' for k in differ)}) than "
                                 f"this session's ({', '.join(f'{k} {expected[k]}' for k in differ)})")
        if analysis.analyser != self.models.identifier:
            raise InvalidRequest(f"the shot-analysis file of shot '{analysis.shot}' was made by analyser "
                                 f"'{analysis.analyser}', this server has '{self.models.identifier}'")
        if not session.analysis_lock.acquire(blocking=False):
            raise ServerBusy(f"shot '{session.shot}' is being analysed in this session")
        try:
            self.db.import_shot(analysis.shot, analysis.settings,
                                ((f.frame, f.content_hash, f.cut, f.keyframe, f.observations) for f in analysis.frames),
                                analysis.tracks)
            session.analysis_imported = True
        finally:
            session.analysis_lock.release()
        return analysis

    def analyse_frames(self, session: Session, analyser: ShotAnalyser,
                       requests: Iterable[FrameRequest | AnalyseResultData],
                       ahead: int = ANALYSIS_AHEAD) -> Generator[AnalyseResultData, None, None]:
        """Analyse the frames of ``requests`` (increasing frame order; a result among them is given in its
        place), one result each in their order: up to ``ahead`` frames are decoded ahead of the analysis and a
        frame's plate crops are stored while the next is analysed (:mod:`.analysis_stream`; 0: one frame after
        the other, the same results). Failures name file, frame and cause."""
        # a frame analysed new means a first render to come: its lazy imports are warmed beside the analysis
        steps = FrameAnalysisSteps(self.frames, self.shots, analyser, session.params.colorspace,
                                   on_new_frame=self._warm_imports.start)
        return analyse_in_order(requests, AnalyseResultData, steps.prepare, steps.analyse, steps.store, ahead)

    def shot_summaries(self, shot: str = "", with_frames: bool = False, smoothing: float = 2.0) -> list[ShotSummary]:
        """The shots of the shot database (or just ``shot``, when it exists), with per-frame summaries on request."""
        return self.shots.summaries(shot, with_frames, smoothing)

    # -- frames -----------------------------------------------------------------------------------
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
            stage=with_paste(session.stage, params.paste),
            min_face=params.min_face,
        )
        frame_hash = self.frames.content_hash(plate, digest)
        clock.lap("hash")
        analysed = self.shots.is_analysed(session.shot, frame_number, frame_hash)
        if analysed:
            selection = FaceSelection.parse(params.face, session.face_reference)
            poses = [s.pose for s in session.sources] if session.stage is None or not session.stage.one_identity else []
            targets = self.shots.targets(session.shot, frame_number, plate.pixels.shape[:2], selection,
                                         params.smoothing, params.stabilise > 0.0, poses)
            clock.lap("tracks")
        else:
            targets = detect_targets(plate.pixels, rgb_index, self.finder(session), settings.colourspace,
                                     MIN_DETECTION_SCORE, clock)
        key_base = hashlib.sha256("|".join([*session.model_ids, self.models.weights_hash(self.db),
                                            settings.model_key_material()]).encode()).hexdigest()
        outcome = render_faces(FramePlate(plate.pixels, rgb_index, frame_hash),
                               RenderRequest(targets, session.sources, session.source_hashes, settings, key_base),
                               RenderServices(self.models, self.cache, self.memos), clock)
        return _Rendered(outcome, targets, analysed, settings, rgb_index)

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
        encoded = self.frames.read(request)
        plate, digest = self.frames.decode(encoded), encoded.digest
        clock.lap("decode")
        params = session.params
        rendered = self._render(session, params, plate, digest, request.frame_number, clock)
        outcome, analysed = rendered.outcome, rendered.analysed
        metadata = output_metadata(params.mode, session.model_ids, session.params_hash, session.source_hashes)
        status, kind, message = frame_status(outcome, where, "plate passed through unchanged")
        output = deliver(request, plate, outcome.pixels, metadata, params.output_format, self.scratch_dir,
                         self.frames.roots, encoded.data)
        clock.lap("encode")
        return FrameResultData(
            request.frame_number, status, kind, message, outcome.faces, clock.timings, output,
            "" if output is not None else request.output_path, analysed,
        )

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
            plate, digest = self.frames.load_remembered(request)
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
            observed = self.shots.observed_landmarks(session.shot, request.frame_number)
            box = preview_module.faces_region(observed if rendered.analysed else list(landmarks), frame_hw,
                                              rendered.settings.crop_margin)
        size = preview_module.preview_size(box, max_side)
        out = rendered.outcome
        image = preview_module.reduce_rgb(out.pixels, rendered.rgb_index, box, size) if include_rendered else None
        plate_image = (preview_module.reduce_rgb(plate.pixels, rendered.rgb_index, box, size)
                       if include_plate else None)
        labels = (preview_module.region_labels(landmarks, box, size, occlusion=out.occlusion)
                  if include_regions else None)
        clock.lap("preview")
        status, kind, message = frame_status(out, where, "plate shown unchanged")
        return PreviewData(request.frame_number, status, kind, message, image, plate_image, box, frame_hw,
                           out.faces, landmarks, labels, clock.timings, rendered.analysed,
                           rendered.settings.colourspace.name)
