"""The gRPC servicer: translates messages to engine calls, and maps errors to status codes (only here)."""

from __future__ import annotations

import functools
import logging
import os
import socket
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import NoReturn, TypeVar

import grpc
import numpy as np
from facebridge import schema
from facebridge_wire.chunking import MAX_CHUNK_BYTES, ChunkError, Reassembler, split_chunks
from facebridge_wire.v1 import facebridge_pb2 as pb
from facebridge_wire.v1 import facebridge_pb2_grpc as pb_grpc

from .. import __version__
from ..pipeline.render import FaceReport
from .audit import AuditLog
from .engine import AnalyseResultData, FaceSwapEngine, FrameRequest, FrameResultData, PreviewData, ShotSummary
from .errors import FaceBridgeError, InvalidRequest, ModelUnavailable, ServerBusy, SessionNotFound, SourceError
from .sessions import Session, SessionParams

_LOG = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""Receive limit for one message: OpenSession carries whole source images; frames always come in chunks."""

_STATUS = {
    InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT,
    SourceError: grpc.StatusCode.INVALID_ARGUMENT,
    ChunkError: grpc.StatusCode.INVALID_ARGUMENT,
    SessionNotFound: grpc.StatusCode.NOT_FOUND,
    ServerBusy: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ModelUnavailable: grpc.StatusCode.FAILED_PRECONDITION,
}
_FRAME_CODE = {"ok": pb.FrameStatus.OK, "warning": pb.FrameStatus.WARNING, "failed": pb.FrameStatus.FAILED}

T = TypeVar("T")


def _status_for(exc: BaseException) -> grpc.StatusCode:
    for kind, code in _STATUS.items():
        if isinstance(exc, kind):
            return code
    return grpc.StatusCode.INTERNAL


def _abort(context: grpc.ServicerContext, exc: Exception, method: str) -> NoReturn:
    """End the call with the status for ``exc``: domain errors with their one-line message, bugs as INTERNAL."""
    if isinstance(exc, (FaceBridgeError, ChunkError)):
        context.abort(_status_for(exc), str(exc))
    _LOG.exception("%s failed", method)
    context.abort(grpc.StatusCode.INTERNAL, f"{method}: internal error: {exc}")
    raise AssertionError("unreachable")  # context.abort raises


def _mapped(method: Callable[..., T]) -> Callable[..., T]:
    """Turn domain errors raised by ``method`` into a gRPC status with a one-line message."""

    @functools.wraps(method)
    def wrapper(self: "FaceBridgeService", request: object, context: grpc.ServicerContext) -> T:
        try:
            return method(self, request, context)
        except Exception as exc:  # noqa: BLE001 - mapped to a status, never leaked
            _abort(context, exc, method.__name__)

    return wrapper


def _mapped_stream(method: Callable[..., Iterator[T]]) -> Callable[..., Iterator[T]]:
    """As ``_mapped``, for response-streaming methods."""

    @functools.wraps(method)
    def wrapper(self: "FaceBridgeService", request: object, context: grpc.ServicerContext) -> Iterator[T]:
        try:
            yield from method(self, request, context)
        except Exception as exc:  # noqa: BLE001 - mapped to a status, never leaked
            _abort(context, exc, method.__name__)

    return wrapper


def _face_qc(face: FaceReport) -> pb.FaceQC:
    return pb.FaceQC(
        index=face.index,
        swapped=face.swapped,
        identity_distance=face.identity_distance,
        identity_distance_plate=face.identity_distance_plate,
        source_label=face.source_label,
        box=list(face.box),
        yaw=face.pose[0],
        pitch=face.pose[1],
        roll=face.pose[2],
        track_id=face.track,
        cache_hit=face.cache_hit,
        jitter_raw=face.jitter[0],
        jitter_smoothed=face.jitter[1],
        fp32_fallback=face.fp32_fallback,
    )


def _result_messages(frame_id: int, result: FrameResultData) -> Iterator[pb.ProcessFramesResponse]:
    qc = pb.FrameQC(
        faces_found=len(result.faces),
        faces_swapped=sum(f.swapped for f in result.faces),
        faces=[_face_qc(f) for f in result.faces],
        timings_ms=result.timings_ms,
        analysed=result.analysed,
    )
    yield pb.ProcessFramesResponse(
        result=pb.FrameResult(
            frame_id=frame_id,
            frame_number=result.frame_number,
            status=pb.FrameStatus(code=_FRAME_CODE[result.status], kind=result.kind, message=result.message),
            qc=qc,
            total_bytes=len(result.output) if result.output is not None else 0,
            output_path=result.output_path,
        )
    )
    if result.output is not None:
        for offset, piece in split_chunks(result.output, MAX_CHUNK_BYTES):
            yield pb.ProcessFramesResponse(chunk=pb.FrameChunk(frame_id=frame_id, offset=offset, data=bytes(piece)))


def _analyse_message(result: AnalyseResultData) -> pb.AnalyseProgress:
    return pb.AnalyseProgress(
        frame_number=result.frame_number,
        status=pb.FrameStatus(code=_FRAME_CODE[result.status], kind=result.kind, message=result.message),
        cut=result.cut,
        keyframe=result.keyframe,
        replayed=result.replayed,
        tracks=list(result.tracks),
        timings_ms=result.timings_ms,
    )


def _preview_image(image: np.ndarray | None) -> pb.PreviewImage | None:
    if image is None:
        return None
    h, w, c = image.shape
    return pb.PreviewImage(width=w, height=h, channels=c, data=np.ascontiguousarray(image, "<f2").tobytes())


def _preview_message(data: PreviewData) -> pb.PreviewResponse:
    from ..compositing.regions import REGION_NAMES

    reply = pb.PreviewResponse(
        frame_number=data.frame_number,
        status=pb.FrameStatus(code=_FRAME_CODE[data.status], kind=data.kind, message=data.message),
        rendered=_preview_image(data.rendered),
        plate=_preview_image(data.plate),
        x0=data.box.x0, y0=data.box.y0, x1=data.box.x1, y1=data.box.y1,
        frame_width=data.frame_hw[1], frame_height=data.frame_hw[0],
        faces=[pb.PreviewFace(qc=_face_qc(f), landmarks=np.asarray(lm, np.float32).ravel().tolist())
               for f, lm in zip(data.faces, data.landmarks)],
        timings_ms=data.timings_ms,
        analysed=data.analysed,
        colourspace=data.colourspace,
    )
    if data.labels is not None:
        h, w = data.labels.shape
        reply.regions.CopyFrom(pb.RegionOverlay(width=w, height=h, labels=np.ascontiguousarray(data.labels).tobytes(),
                                                region_names=list(REGION_NAMES)))
    return reply


def _shot_message(summary: ShotSummary) -> pb.ShotInfo:
    return pb.ShotInfo(
        shot=summary.shot,
        first_frame=summary.frames[0] if summary.frames else 0,
        last_frame=summary.frames[-1] if summary.frames else 0,
        frames=len(summary.frames),
        tracks=list(summary.tracks),
        cuts=summary.cuts,
        keyframes=summary.keyframes,
        created=summary.created,
        frame_summaries=[pb.FrameSummary(frame_number=f.frame_number, cut=f.cut, keyframe=f.keyframe,
                                         tracks=list(f.tracks), jitter_raw=f.jitter[0], jitter_smoothed=f.jitter[1])
                         for f in summary.per_frame],
    )


def session_params(p: pb.ProcessParams) -> SessionParams:
    """Wire parameters -> SessionParams through the schema's mapping (absent numbers take the schema's
    default); unchecked: the engine validates them."""
    return SessionParams(**schema.values_from_message(p), output_format=p.output_format or "exr",
                         quality_checks=not p.skip_quality_checks)


class FaceBridgeService(pb_grpc.FaceBridgeServicer):
    """Thin transport layer over ``FaceSwapEngine``.

    Args:
        engine: does the work.
        audit: where who-processed-what is recorded.
        device: the resolved compute device, reported by GetServerInfo.
        allow_paths: offer TRANSPORT_PATH (the server reads and writes client-named files).
        frame_workers: frames of one stream processed at once (results still return in order).
    """

    def __init__(self, engine: FaceSwapEngine, audit: AuditLog, device: str, allow_paths: bool,
                 frame_workers: int | None = None) -> None:
        self.engine = engine
        self.audit = audit
        self.device = device
        self.allow_paths = allow_paths
        self.frame_workers = max(1, frame_workers if frame_workers is not None else min(2, os.cpu_count() or 1))

    @_mapped
    def GetServerInfo(self, request: pb.GetServerInfoRequest, context: grpc.ServicerContext) -> pb.GetServerInfoResponse:
        models = self.engine.models
        self.engine.pool.statuses(rescan=True)
        transports = [pb.TRANSPORT_STREAM] + ([pb.TRANSPORT_PATH] if self.allow_paths else [])
        return pb.GetServerInfoResponse(
            server_version=__version__,
            api_version="facebridge.v1",
            device=self.device,
            models=[
                pb.ModelInfo(id=models.identifier, kind="detector+landmarker+embedder", format="embedded",
                             status="ready", detail=str(models.directory)),
                *(pb.ModelInfo(id=status.record.name, kind=status.record.kind, format=status.record.format,
                               status=status.state, detail=str(status.path or ""))
                  for status in self.engine.pool.statuses()),
            ],
            limits=pb.Limits(
                max_chunk_bytes=MAX_CHUNK_BYTES,
                max_frame_bytes=self.engine.max_frame_bytes,
                max_width=self.engine.limits.max_width,
                max_height=self.engine.limits.max_height,
                max_message_bytes=MAX_MESSAGE_BYTES,
            ),
            transports=transports,
            hostname=socket.gethostname(),
        )

    @_mapped
    def OpenSession(self, request: pb.OpenSessionRequest, context: grpc.ServicerContext) -> pb.OpenSessionResponse:
        params = session_params(request.params)
        sources = [(s.label or f"source{i}", s.data) for i, s in enumerate(request.sources)]
        reference = request.params.face_reference
        session = self.engine.open_session(request.client or context.peer(), request.shot, sources, params,
                                           (reference.label or "reference", reference.data) if reference.data else None)
        self.audit.append("open", self._audit_record(session, context))
        return pb.OpenSessionResponse(
            session_id=session.id,
            sources=[
                pb.SourceFaceInfo(label=s.label, yaw=s.pose[0], pitch=s.pose[1], roll=s.pose[2], sha256=h)
                for s, h in zip(session.sources, session.source_hashes)
            ],
            params_hash=session.params_hash,
            model_ids=session.model_ids,
            notes=list(session.notes),
        )

    @_mapped
    def CloseSession(self, request: pb.CloseSessionRequest, context: grpc.ServicerContext) -> pb.CloseSessionResponse:
        session = self.engine.sessions.remove(request.session_id)
        self.audit.append("close", self._audit_record(session, context))
        return pb.CloseSessionResponse(frames_processed=session.frames_processed, frames_failed=session.frames_failed)

    def _incoming_frames(
        self, request_iterator: Iterator[pb.ProcessFramesRequest], context: grpc.ServicerContext
    ) -> Iterator[tuple[int, FrameRequest]]:
        """Reassemble the frames of a stream (after its StreamStart) into ``(frame_id, FrameRequest)``."""
        pending: dict[int, tuple[pb.FrameHeader, Reassembler]] = {}
        for message in request_iterator:
            kind = message.WhichOneof("payload")
            if kind == "header":
                header = message.header
                if header.transport == pb.TRANSPORT_PATH:
                    if not self.allow_paths:
                        raise InvalidRequest("this server does not offer TRANSPORT_PATH; stream the frames")
                    yield header.frame_id, FrameRequest(header.frame_number, header.name or header.input_path,
                                                        input_path=header.input_path, output_path=header.output_path)
                    continue
                if header.frame_id in pending:
                    raise InvalidRequest(f"frame id {header.frame_id} announced twice")
                if header.total_bytes == 0:
                    yield header.frame_id, FrameRequest(header.frame_number, header.name, data=b"")
                    continue
                pending[header.frame_id] = (header, Reassembler(header.total_bytes, self.engine.max_frame_bytes))
            elif kind == "chunk":
                chunk = message.chunk
                if chunk.frame_id not in pending:
                    raise InvalidRequest(f"chunk for unannounced frame id {chunk.frame_id}")
                header, assembler = pending[chunk.frame_id]
                assembler.add(chunk.offset, chunk.data)
                if assembler.complete:
                    del pending[chunk.frame_id]
                    yield chunk.frame_id, FrameRequest(header.frame_number, header.name, data=assembler.result())
            else:
                raise InvalidRequest(f"unexpected '{kind}' message inside a stream")
            if not context.is_active():
                return

    def _stream_session(self, request_iterator: Iterator[pb.ProcessFramesRequest]) -> Session:
        first = next(request_iterator, None)
        if first is None or first.WhichOneof("payload") != "start":
            raise InvalidRequest("the stream must begin with a StreamStart message")
        return self.engine.sessions.get(first.start.session_id)

    @_mapped_stream
    def ProcessFrames(
        self, request_iterator: Iterator[pb.ProcessFramesRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.ProcessFramesResponse]:
        session = self._stream_session(request_iterator)
        done: list[int] = []
        failed: list[int] = []

        def finished(frame_id: int, future: Future[FrameResultData]) -> Iterator[pb.ProcessFramesResponse]:
            result = future.result()
            (failed if result.failed else done).append(result.frame_number)
            yield from _result_messages(frame_id, result)

        # frames are independent (each a pure function of its plate, the analysis and the parameters), so
        # up to ``frame_workers`` run at once: one frame's decode and encode overlap another's compositing.
        # Results go back in the order the frames came.
        in_flight: deque[tuple[int, Future[FrameResultData]]] = deque()
        try:
            with ThreadPoolExecutor(self.frame_workers, thread_name_prefix="facebridge-frame") as pool:
                try:
                    for frame_id, request in self._incoming_frames(request_iterator, context):
                        in_flight.append((frame_id, pool.submit(self.engine.process_frame, session, request)))
                        while len(in_flight) >= self.frame_workers or (in_flight and in_flight[0][1].done()):
                            yield from finished(*in_flight.popleft())
                    while in_flight:
                        yield from finished(*in_flight.popleft())
                finally:
                    for _, future in in_flight:
                        future.cancel()
        finally:
            self.audit.append(
                "frames", {**self._audit_record(session, context), "frames": done, "failed_frames": failed}
            )

    @_mapped_stream
    def AnalyseShot(
        self, request_iterator: Iterator[pb.ProcessFramesRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.AnalyseProgress]:
        session = self._stream_session(request_iterator)
        if not session.analysis_lock.acquire(blocking=False):
            raise ServerBusy(f"shot '{session.shot}' is already being analysed in this session")
        analysed: list[int] = []
        try:
            analyser = self.engine.analyser(session)
            for _, request in self._incoming_frames(request_iterator, context):
                result = self.engine.analyse_frame(session, analyser, request)
                if result.status == "ok":
                    analysed.append(result.frame_number)
                yield _analyse_message(result)
        finally:
            session.analysis_lock.release()
            self.audit.append("analyse", {**self._audit_record(session, context), "frames": analysed})

    @_mapped
    def ListShots(self, request: pb.ListShotsRequest, context: grpc.ServicerContext) -> pb.ListShotsResponse:
        try:
            smoothing = schema.check("smoothing", request.smoothing if request.HasField("smoothing")
                                     else schema.BY_NAME["smoothing"].default)
        except schema.SettingError as exc:
            raise InvalidRequest(str(exc)) from exc
        summaries = self.engine.shot_summaries(request.shot, request.with_frames, smoothing)
        return pb.ListShotsResponse(shots=[_shot_message(s) for s in summaries])

    @_mapped
    def Preview(self, request: pb.PreviewRequest, context: grpc.ServicerContext) -> pb.PreviewResponse:
        session = self.engine.sessions.get(request.session_id)
        which = request.WhichOneof("plate")
        if which == "input_path":
            if not self.allow_paths:
                raise InvalidRequest("this server does not offer TRANSPORT_PATH; send the plate's bytes")
            frame = FrameRequest(request.frame_number, request.name or request.input_path,
                                 input_path=request.input_path)
        elif which == "data":
            frame = FrameRequest(request.frame_number, request.name, data=request.data)
        else:
            raise InvalidRequest("a preview needs the plate: input_path or data")
        overrides = session_params(request.params) if request.HasField("params") else None
        region = "frame" if request.region == pb.PREVIEW_REGION_FRAME else "faces"
        data = self.engine.preview_frame(session, frame, request.max_side, region, overrides,
                                         include_rendered=not request.omit_rendered,
                                         include_plate=request.include_plate,
                                         include_regions=request.include_regions)
        return _preview_message(data)

    @staticmethod
    def _audit_record(session: Session, context: grpc.ServicerContext) -> dict[str, object]:
        return {
            "client": session.client,
            "peer": context.peer(),
            "shot": session.shot,
            "session": session.id,
            "sources_sha256": session.source_hashes,
            "params": session.params.as_dict(),
            "params_hash": session.params_hash,
            "model_ids": session.model_ids,
        }
