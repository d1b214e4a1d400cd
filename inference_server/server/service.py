"""The gRPC servicer: translates messages to engine calls, and maps errors to status codes (only here)."""

from __future__ import annotations

import functools
import logging
import os
import queue
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from typing import Generic, NoReturn, TypeVar, cast

import grpc
from facebridge import analysis_file, schema
from facebridge_wire.chunking import (MAX_CHUNK_BYTES, ChunkError, ChunkPieces, ChunkView, Reassembler,
                                      chunk_deserializer, serialize, split_chunks)
from facebridge_wire.v1 import facebridge_pb2 as pb
from facebridge_wire.v1 import facebridge_pb2_grpc as pb_grpc

from .. import __version__
from . import messages
from .audit import AuditLog
from .auth import peer_identity
from .engine import AnalyseResultData, FaceSwapEngine, FrameRequest, FrameResultData
from .errors import (FaceBridgeError, InvalidRequest, ModelUnavailable, ServerBusy, SessionNotFound, ShotNotFound,
                     SourceError, StreamIdle)
from .sessions import Session

_LOG = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["FaceBridge"].full_name
"""``facebridge.v1.FaceBridge``."""

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""Receive limit for one message: OpenSession carries whole source images; frames always come in chunks."""

_STATUS = {
    InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT,
    SourceError: grpc.StatusCode.INVALID_ARGUMENT,
    ChunkError: grpc.StatusCode.INVALID_ARGUMENT,
    SessionNotFound: grpc.StatusCode.NOT_FOUND,
    ShotNotFound: grpc.StatusCode.NOT_FOUND,
    ServerBusy: grpc.StatusCode.RESOURCE_EXHAUSTED,
    StreamIdle: grpc.StatusCode.DEADLINE_EXCEEDED,
    ModelUnavailable: grpc.StatusCode.FAILED_PRECONDITION,
}

T = TypeVar("T")
R = TypeVar("R")


def _status_for(exc: BaseException) -> grpc.StatusCode:
    for kind, code in _STATUS.items():
        if isinstance(exc, kind):
            return code
    return grpc.StatusCode.INTERNAL


MAX_PENDING_FRAMES = 2
"""Frames a stream may have announced and not yet completed: what one stream can make the server buffer."""


class _ClientGone(Exception):
    """The client cancelled the call or went away; nothing more can be sent."""


def _client_gone(exc: BaseException, context: grpc.ServicerContext) -> bool:
    return isinstance(exc, (_ClientGone, grpc.RpcError)) or not context.is_active()


def _peer_host(context: grpc.ServicerContext) -> str:
    """The host part of the peer's address (``ipv4:10.0.0.5:51234`` -> ``ipv4:10.0.0.5``): one client machine
    however many connections it opens (the per-peer session cap counts by it)."""
    peer = context.peer() or ""
    if peer.startswith("ipv6:[") and "]" in peer:
        return peer[:peer.index("]") + 1]
    if peer.startswith(("ipv4:", "ipv6:")) and peer.count(":") >= 2:
        return peer.rsplit(":", 1)[0]
    return peer


def _abort(service: "FaceBridgeService", context: grpc.ServicerContext, exc: Exception, method: str) -> NoReturn:
    """End the call with the status for ``exc``: domain errors with their one-line message, bugs as INTERNAL.
    A client that went away is logged at INFO in one line (nothing to answer); every refusal is audited."""
    if _client_gone(exc, context):
        _LOG.info("%s: client %s cancelled or went away", method, context.peer())
        service.audit.append("cancelled", {"method": method, **peer_identity(context)})
        context.abort(grpc.StatusCode.CANCELLED, f"{method}: cancelled")
    code = _status_for(exc)
    message = str(exc) if isinstance(exc, (FaceBridgeError, ChunkError)) else f"{method}: internal error: {exc}"
    if code == grpc.StatusCode.INTERNAL:
        _LOG.exception("%s failed", method)
    service.audit.append("refused", {"method": method, **peer_identity(context), "code": code.name,
                                     "message": message})
    context.abort(code, message)
    raise AssertionError("unreachable")  # context.abort raises


def _mapped(method: Callable[..., T]) -> Callable[..., T]:
    """Turn domain errors raised by ``method`` into a gRPC status with a one-line message."""

    @functools.wraps(method)
    def wrapper(self: "FaceBridgeService", request: object, context: grpc.ServicerContext) -> T:
        try:
            return method(self, request, context)
        except Exception as exc:  # noqa: BLE001 - mapped to a status, never leaked
            _abort(self, context, exc, method.__name__)

    return wrapper


def _mapped_out(method: Callable[..., Iterator[T]]) -> Callable[..., Iterator[T]]:
    """As ``_mapped``, for methods that answer one request with a stream."""

    @functools.wraps(method)
    def wrapper(self: "FaceBridgeService", request: object, context: grpc.ServicerContext) -> Iterator[T]:
        try:
            yield from method(self, request, context)
        except GeneratorExit:
            raise
        except Exception as exc:  # noqa: BLE001 - mapped to a status, never leaked
            _abort(self, context, exc, method.__name__)

    return wrapper


FrameMessage = pb.ProcessFramesRequest | ChunkView
"""A message of a frame stream as ``chunk_deserializer`` gives it: a chunk as a ``ChunkView``, else the request."""


def _mapped_stream(method: Callable[..., Iterator[T]]) -> Callable[..., Iterator[T]]:
    """As ``_mapped``, for streaming methods; at most ``max_streams`` run at once (RESOURCE_EXHAUSTED beyond),
    and a stream whose client sends nothing for ``stream_idle_s`` is ended (DEADLINE_EXCEEDED)."""

    @functools.wraps(method)
    def wrapper(self: "FaceBridgeService", request: Iterator[FrameMessage],
                context: grpc.ServicerContext) -> Iterator[T]:
        try:
            if not self.stream_slots.acquire(blocking=False):
                raise ServerBusy(f"{self.max_streams} streams are running on this server (its limit); "
                                 "try again when one ends")
            requests: _TimedRequests[FrameMessage] = _TimedRequests(request, self.stream_idle_s, context)
            try:
                yield from method(self, requests, context)
            finally:
                requests.close()
                self.stream_slots.release()
        except GeneratorExit:  # gRPC stopped taking responses: the client cancelled or went away
            _LOG.info("%s: client %s cancelled or went away", method.__name__, context.peer())
            self.audit.append("cancelled", {"method": method.__name__, **peer_identity(context)})
            raise
        except Exception as exc:  # noqa: BLE001 - mapped to a status, never leaked
            _abort(self, context, exc, method.__name__)

    return wrapper


class _TimedRequests(Generic[R]):
    """A stream's request iterator read by a helper thread, so that a client silent for ``idle_s`` seconds
    ends the stream (StreamIdle) instead of holding a server thread forever.

    The helper reads at most one message ahead (the queue holds one), so it buffers no more than a chunk.
    """

    _END = object()

    def __init__(self, requests: Iterator[R], idle_s: float, context: grpc.ServicerContext) -> None:
        self._queue: queue.Queue[object] = queue.Queue(maxsize=1)
        self._idle_s = idle_s
        self._context = context
        self._stop = threading.Event()
        self._ended = False
        self._thread = threading.Thread(target=self._pump, args=(requests,), name="facebridge-stream-reader",
                                        daemon=True)
        self._thread.start()

    def _put(self, item: object) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.25)
                return
            except queue.Full:
                continue

    def _pump(self, requests: Iterator[R]) -> None:
        try:
            for message in requests:
                self._put(message)
                if self._stop.is_set():
                    return
            self._put(self._END)
        except Exception as exc:  # noqa: BLE001 - handed to the reader (a cancelled call raises here)
            self._put(exc)

    def __iter__(self) -> "_TimedRequests[R]":
        return self

    def __next__(self) -> R:
        if self._ended:
            raise StopIteration
        try:
            item = self._queue.get(timeout=self._idle_s)
        except queue.Empty:
            self.close()
            raise StreamIdle(f"the client sent nothing for {self._idle_s:g} s; stream ended") from None
        if item is self._END:
            self._ended = True
            raise StopIteration
        if isinstance(item, grpc.RpcError):
            self.close()
            raise _ClientGone(str(item) or "cancelled")
        if isinstance(item, BaseException):
            self.close()
            raise item
        return cast(R, item)

    def close(self) -> None:
        self._ended = True
        self._stop.set()


@dataclass(frozen=True)
class _Truncated:
    """A frame the stream announced and ended without completing."""

    frame_number: int
    message: str


class _Handlers:
    """Stands in for a server to collect the generated code's method handlers (``add_service``)."""

    def __init__(self) -> None:
        self.handlers: dict[str, grpc.RpcMethodHandler] = {}

    def add_generic_rpc_handlers(self, _handlers: object) -> None:
        pass

    def add_registered_method_handlers(self, _service: str, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        self.handlers.update(handlers)


def add_service(service: "FaceBridgeService", server: grpc.Server) -> None:
    """Register ``service`` as the generated ``add_FaceBridgeServicer_to_server`` would, except that
    ProcessFrames' responses go through ``chunking.serialize`` (its result chunks leave already encoded), and
    the frame chunks of ProcessFrames and AnalyseShot arrive as ``ChunkView`` (``chunk_deserializer``: their
    data a view into the received bytes, not protobuf's copies)."""
    collected = _Handlers()
    pb_grpc.add_FaceBridgeServicer_to_server(service, collected)
    handlers = dict(collected.handlers)
    requests = chunk_deserializer(pb.ProcessFramesRequest)
    for name in ("ProcessFrames", "AnalyseShot"):
        method = handlers[name]
        assert method.stream_stream is not None  # (the generated handler of a bidi-stream method)
        handlers[name] = grpc.stream_stream_rpc_method_handler(
            method.stream_stream, request_deserializer=requests,
            response_serializer=serialize if name == "ProcessFrames" else method.response_serializer)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)


class FaceBridgeService(pb_grpc.FaceBridgeServicer):
    """Thin transport layer over ``FaceSwapEngine``.

    Args:
        engine: does the work.
        audit: where who-processed-what is recorded.
        device: the resolved compute device, reported by GetServerInfo.
        allow_paths: offer TRANSPORT_PATH (the server reads and writes client-named files).
        frame_workers: frames of one stream processed at once (results still return in order).
        max_streams: streaming calls at once; more are refused with RESOURCE_EXHAUSTED (unary calls and health
            keep the server's other threads).
        stream_idle_s: a stream whose client sends nothing this long is ended with DEADLINE_EXCEEDED.
    """

    def __init__(self, engine: FaceSwapEngine, audit: AuditLog, device: str, allow_paths: bool,
                 frame_workers: int | None = None, max_streams: int = 6, stream_idle_s: float = 120.0) -> None:
        self.engine = engine
        self.audit = audit
        self.device = device
        self.allow_paths = allow_paths
        self.frame_workers = max(1, frame_workers if frame_workers is not None else min(2, os.cpu_count() or 1))
        self.max_streams = max_streams
        self.stream_slots = threading.BoundedSemaphore(max_streams)
        self.stream_idle_s = stream_idle_s
        self.stopped = threading.Event()  # set when the server stops (ends the session sweeper)

    def expire_sessions(self) -> int:
        """Close the sessions unused for the engine's idle time (audited as ``expire``); how many."""
        expired = self.engine.sessions.expire_idle()
        for session in expired:
            self.audit.append("expire", {"client": session.client, "peer": session.peer, "shot": session.shot,
                                         "session": session.id, "frames_processed": session.frames_processed,
                                         "frames_failed": session.frames_failed})
        return len(expired)

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
        params = messages.session_params(request.params)
        sources = [(s.label or f"source{i}", s.data) for i, s in enumerate(request.sources)]
        reference = request.params.face_reference
        self.expire_sessions()
        session = self.engine.open_session(request.client or context.peer(), request.shot, sources, params,
                                           (reference.label or "reference", reference.data) if reference.data else None,
                                           peer=_peer_host(context))
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
        self, request_iterator: Iterator[FrameMessage], context: grpc.ServicerContext
    ) -> Iterator[tuple[int, FrameRequest | _Truncated]]:
        """Reassemble the frames of a stream (after its StreamStart) into ``(frame_id, FrameRequest)``.

        Bounded: at most ``MAX_PENDING_FRAMES`` announced and incomplete at once, each holding the chunks
        received so far (``ChunkPieces``: the frame stays in the pieces it came in, never copied or joined); a
        frame id is used once per stream. A frame still incomplete when
        the stream ends comes out as ``_Truncated`` (a failed result naming it, never silence).
        """
        pending: dict[int, tuple[pb.FrameHeader, ChunkPieces]] = {}
        seen: set[int] = set()
        for message in request_iterator:
            if isinstance(message, ChunkView):
                chunk = message
                if chunk.frame_id not in pending:
                    raise InvalidRequest(f"chunk for unannounced frame id {chunk.frame_id}")
                header, assembler = pending[chunk.frame_id]
                assembler.add(chunk.offset, chunk.data)
                if assembler.complete:
                    del pending[chunk.frame_id]
                    yield chunk.frame_id, FrameRequest(header.frame_number, header.name, data=assembler.result(),
                                                       input_copies=header.input_copies)
            elif (kind := message.WhichOneof("payload")) == "header":
                header = message.header
                if header.frame_id in seen:
                    raise InvalidRequest(f"frame id {header.frame_id} used twice in this stream")
                seen.add(header.frame_id)
                if header.transport == pb.TRANSPORT_PATH:
                    if not self.allow_paths:
                        raise InvalidRequest("this server does not offer TRANSPORT_PATH; stream the frames")
                    yield header.frame_id, FrameRequest(header.frame_number, header.name or header.input_path,
                                                        input_path=header.input_path, output_path=header.output_path)
                    continue
                if header.total_bytes == 0:
                    yield header.frame_id, FrameRequest(header.frame_number, header.name, data=())
                    continue
                if len(pending) >= MAX_PENDING_FRAMES:
                    raise InvalidRequest(f"{len(pending)} frames are announced and incomplete; send their chunks "
                                         f"before announcing frame id {header.frame_id}")
                pending[header.frame_id] = (header, ChunkPieces(header.total_bytes, self.engine.max_frame_bytes))
            else:
                raise InvalidRequest(f"unexpected '{kind}' message inside a stream")
            if not context.is_active():
                raise _ClientGone("cancelled")
        for frame_id, (header, assembler) in pending.items():
            yield frame_id, _Truncated(header.frame_number,
                                       f"{header.name} (frame {header.frame_number}): stream ended after "
                                       f"{assembler.received} of {assembler.total_bytes} bytes")

    def _stream_session(self, request_iterator: Iterator[FrameMessage]) -> Session:
        first = next(request_iterator, None)
        if first is None or isinstance(first, ChunkView) or first.WhichOneof("payload") != "start":
            raise InvalidRequest("the stream must begin with a StreamStart message")
        return self.engine.sessions.get(first.start.session_id)

    @_mapped_stream
    def ProcessFrames(
        self, request_iterator: Iterator[FrameMessage], context: grpc.ServicerContext
    ) -> Iterator[pb.ProcessFramesResponse | bytes]:
        session = self._stream_session(request_iterator)
        done: list[int] = []
        failed: list[int] = []
        paths: list[dict[str, object]] = []
        input_copies: set[int] = set()  # frame ids whose client takes parts of the result from the input it sent

        def submit(pool: ThreadPoolExecutor, request: FrameRequest | _Truncated) -> Future[FrameResultData]:
            if isinstance(request, _Truncated):
                future: Future[FrameResultData] = Future()
                future.set_result(FrameResultData(request.frame_number, "failed", "incomplete", request.message))
                session.count(True)
                return future
            if request.input_path:
                paths.append({"frame": request.frame_number, "input": request.input_path,
                              "output": request.output_path})
            return pool.submit(self.engine.process_frame, session, request)

        def finished(frame_id: int, future: Future[FrameResultData]) -> Iterator[pb.ProcessFramesResponse | bytes]:
            result = future.result()
            (failed if result.failed else done).append(result.frame_number)
            yield from messages.result_messages(frame_id, result, frame_id in input_copies)

        # frames are independent (each a pure function of its plate, the analysis and the parameters), so
        # up to ``frame_workers`` run at once: one frame's decode and encode overlap another's compositing.
        # Results go back in the order the frames came. When the client goes away, no further frame starts;
        # the ones already running finish (the pool waits for them) and are audited as such.
        in_flight: deque[tuple[int, Future[FrameResultData]]] = deque()
        session.stream_started()
        try:
            with ThreadPoolExecutor(self.frame_workers, thread_name_prefix="facebridge-frame") as pool:
                try:
                    for frame_id, request in self._incoming_frames(request_iterator, context):
                        if isinstance(request, FrameRequest) and request.input_copies:
                            input_copies.add(frame_id)
                        in_flight.append((frame_id, submit(pool, request)))
                        while len(in_flight) >= self.frame_workers or (in_flight and in_flight[0][1].done()):
                            yield from finished(*in_flight.popleft())
                    while in_flight:
                        yield from finished(*in_flight.popleft())
                finally:
                    for _, future in in_flight:
                        future.cancel()
        finally:
            session.stream_ended()
            record: dict[str, object] = {**self._audit_record(session, context), "frames": done,
                                         "failed_frames": failed}
            if paths:
                record["paths"] = paths
            undelivered = [f.result().frame_number for _, f in in_flight if f.done() and not f.cancelled()]
            if undelivered:  # processed (with path transport: written) but never reported to the client
                record["completed_after_client_left" if not context.is_active() else "completed_undelivered"] = \
                    undelivered
            self.audit.append("frames", record)

    @_mapped_stream
    def AnalyseShot(
        self, request_iterator: Iterator[FrameMessage], context: grpc.ServicerContext
    ) -> Iterator[pb.AnalyseProgress]:
        session = self._stream_session(request_iterator)
        if not session.analysis_lock.acquire(blocking=False):
            raise ServerBusy(f"shot '{session.shot}' is already being analysed in this session")
        analysed: list[int] = []
        inputs: list[str] = []
        session.stream_started()
        try:
            analyser = self.engine.analyser(session)

            def frames() -> Iterator[FrameRequest | AnalyseResultData]:
                for _, request in self._incoming_frames(request_iterator, context):
                    if isinstance(request, _Truncated):
                        yield AnalyseResultData(request.frame_number, "failed", "incomplete", request.message)
                        continue
                    if request.input_path:
                        inputs.append(request.input_path)
                    yield request

            # frames are decoded ahead of the analysis and their plate crops stored behind it (engine); closed
            # here, so a client that leaves has the stores of the frames analysed finished before the lock is free
            with closing(self.engine.analyse_frames(session, analyser, frames())) as results:
                for result in results:
                    session.touch()
                    if result.status == "ok":
                        analysed.append(result.frame_number)
                    yield messages.analyse_message(result)
        finally:
            session.stream_ended()
            session.analysis_lock.release()
            record: dict[str, object] = {**self._audit_record(session, context), "frames": analysed}
            if inputs:
                record["inputs"] = inputs
            self.audit.append("analyse", record)

    @_mapped
    def ListShots(self, request: pb.ListShotsRequest, context: grpc.ServicerContext) -> pb.ListShotsResponse:
        try:
            smoothing = schema.check("smoothing", request.smoothing if request.HasField("smoothing")
                                     else schema.BY_NAME["smoothing"].default)
        except schema.SettingError as exc:
            raise InvalidRequest(str(exc)) from exc
        summaries = self.engine.shot_summaries(request.shot, request.with_frames, smoothing)
        self.audit.append("list_shots", {**peer_identity(context), "shot": request.shot,
                                         "with_frames": request.with_frames, "smoothing": smoothing,
                                         "shots": len(summaries)})
        return pb.ListShotsResponse(shots=[messages.shot_message(s) for s in summaries])

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
            frame = FrameRequest(request.frame_number, request.name, data=(request.data,))
        else:
            raise InvalidRequest("a preview needs the plate: input_path or data")
        overrides = messages.session_params(request.params) if request.HasField("params") else None
        region = "frame" if request.region == pb.PREVIEW_REGION_FRAME else "faces"
        data = self.engine.preview_frame(session, frame, request.max_side, region, overrides,
                                         include_rendered=not request.omit_rendered,
                                         include_plate=request.include_plate,
                                         include_regions=request.include_regions)
        self.audit.append("preview", {**self._audit_record(session, context), "frame": request.frame_number,
                                      "input": frame.input_path or f"<{len(request.data)} bytes: {frame.name}>",
                                      "status": data.status})
        return messages.preview_message(data)

    @_mapped_out
    def ExportAnalysis(self, request: pb.ExportAnalysisRequest,
                       context: grpc.ServicerContext) -> Iterator[pb.AnalysisChunk]:
        data = self.engine.export_analysis(request.shot)
        self.audit.append("export_analysis", {**peer_identity(context), "shot": request.shot, "bytes": len(data)})
        for offset, piece in split_chunks(data, MAX_CHUNK_BYTES):
            yield pb.AnalysisChunk(offset=offset, data=bytes(piece), total_bytes=len(data))

    @_mapped
    def ImportAnalysis(self, request_iterator: Iterator[pb.ImportAnalysisRequest],
                       context: grpc.ServicerContext) -> pb.ImportAnalysisResponse:
        # a stream like the frame streams: it takes a stream slot, and a silent client is ended after stream_idle_s
        if not self.stream_slots.acquire(blocking=False):
            raise ServerBusy(f"{self.max_streams} streams are running on this server (its limit); "
                             "try again when one ends")
        requests: _TimedRequests[pb.ImportAnalysisRequest] = _TimedRequests(request_iterator, self.stream_idle_s,
                                                                             context)
        try:
            first = next(requests, None)
            if first is None or first.WhichOneof("payload") != "start":
                raise InvalidRequest("an ImportAnalysis stream must begin with an ImportAnalysisStart message")
            session = self.engine.sessions.get(first.start.session_id)
            if first.start.total_bytes > analysis_file.MAX_BYTES:
                raise InvalidRequest(f"a shot-analysis file of {first.start.total_bytes} bytes exceeds the limit of "
                                     f"{analysis_file.MAX_BYTES} bytes")
            assembler = Reassembler(first.start.total_bytes, analysis_file.MAX_BYTES)
            for message in requests:
                if message.WhichOneof("payload") != "chunk":
                    raise InvalidRequest("an ImportAnalysis stream has one start message, then chunks")
                assembler.add(message.chunk.offset, message.chunk.data)
                if not context.is_active():
                    raise _ClientGone("cancelled")
            data = assembler.result()
        finally:
            requests.close()
            self.stream_slots.release()
        analysis = self.engine.import_analysis(session, data)
        session.touch()
        frames = [f.frame for f in analysis.frames]
        self.audit.append("import_analysis", {**self._audit_record(session, context), "bytes": len(data),
                                              "analysis_sha256": analysis.sha256, "frames": len(frames),
                                              "tracks": len(analysis.tracks)})
        return pb.ImportAnalysisResponse(shot=analysis.shot, frames=len(frames), tracks=len(analysis.tracks),
                                         first_frame=frames[0] if frames else 0,
                                         last_frame=frames[-1] if frames else 0, sha256=analysis.sha256)

    @staticmethod
    def _audit_record(session: Session, context: grpc.ServicerContext) -> dict[str, object]:
        return {
            "client": session.client,  # as the client declared itself; peer_identity is what was authenticated
            **peer_identity(context),
            "shot": session.shot,
            "session": session.id,
            "sources_sha256": session.source_hashes,
            "params": session.params.as_dict(),
            "params_hash": session.params_hash,
            "model_ids": session.model_ids,
        }
