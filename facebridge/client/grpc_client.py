"""The facebridge gRPC client: server info, sessions and streaming frames through the server."""

from __future__ import annotations

import functools
import json
import math
import os
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from facebridge_wire.chunking import (CHUNK_PREFIX_BYTES, MAX_CHUNK_BYTES, ChunkCursor, ChunkError, ChunkView,
                                      Reassembler, chunk_deserializer, chunk_prefix, serialize, split_chunks)
from facebridge_wire.v1 import facebridge_pb2 as pb
from facebridge_wire.v1 import facebridge_pb2_grpc as pb_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from facebridge import analysis_file
from facebridge.auth import ClientTLS, TokenError, client_tls, find_token, token_lookup
from facebridge.files import AtomicFile, write_atomic  # noqa: F401 - write_atomic: re-exported
from facebridge.schema import SettingError
from facebridge.settings import RenderParams

from .channel import open_channel
from .errors import ClientError
from .input_buffer import BufferPool, InputChanged, InputCopy, InputFile
from .jobs import AnalyseOutcome, FrameJob, FrameOutcome
from .params import to_proto
from .result_writer import QueuedWriter

if TYPE_CHECKING:
    import numpy as np

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
_SERVICE_CONFIG = json.dumps({
    "methodConfig": [{
        "name": [{"service": "facebridge.v1.FaceBridge", "method": m} for m in ("GetServerInfo", "CloseSession")],
        "retryPolicy": {
            "maxAttempts": 4, "initialBackoff": "0.2s", "maxBackoff": "2s", "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        },
    }]
})
_RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.DEADLINE_EXCEEDED}
_RESERVE_MAX_BYTES = 1 << 30
"""The largest result whose disk space is reserved before it arrives (``AtomicFile(size=...)``)."""
_STATUS_NAMES = {pb.FrameStatus.OK: "ok", pb.FrameStatus.WARNING: "warning", pb.FrameStatus.FAILED: "failed"}


def _mapped(exc: grpc.RpcError, what: str, address: str) -> ClientError:
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    detail = exc.details() if hasattr(exc, "details") else str(exc)
    if code == grpc.StatusCode.UNAVAILABLE:
        return ClientError(f"server {address} unavailable during {what}: {detail}", retryable=True)
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return ClientError(f"server {address} refused {what}: not authenticated (the token is read from "
                           f"{token_lookup(os.environ)}; it must be the server's)")
    return ClientError(f"{what}: {detail}", retryable=code in _RETRYABLE)


@dataclass(frozen=True)
class SessionInfo:
    session_id: str
    params_hash: str
    model_ids: list[str]
    sources: list[dict[str, object]]
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ShotListing:
    """A shot of the server's shot database (``list_shots``)."""

    shot: str
    first_frame: int
    last_frame: int
    frames: int
    tracks: list[int]
    cuts: int
    keyframes: int
    created: float
    # with_frames: one {"frame", "cut", "keyframe", "tracks", "jitter_raw", "jitter_smoothed"} per analysed frame
    frame_summaries: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class PreviewResult:
    """A reduced-size preview of one frame (``preview``).

    ``rendered`` and ``plate`` are ``(h, w, 3)`` float16 scene-linear R,G,B (``colourspace``) of the
    data-window box ``box = (x0, y0, x1, y1)`` resized to ``(w, h)``; ``faces`` are QC dicts (as in
    ``FrameOutcome.faces``) with ``landmarks`` ``(68, 2)`` float32 data-window pixels; ``labels`` is the
    region-label overlay (uint8, its own grid over ``box``; 0 = no face, k = ``region_names[k - 1]``).
    """

    frame_number: int
    status: str  # ok | warning | failed
    kind: str
    message: str
    rendered: "np.ndarray | None"
    plate: "np.ndarray | None"
    box: tuple[int, int, int, int]
    frame_size: tuple[int, int]  # (width, height) of the data window
    faces: list[dict[str, Any]]
    labels: "np.ndarray | None"
    region_names: list[str]
    timings_ms: dict[str, float]
    analysed: bool
    colourspace: str
    round_trip_ms: float = 0.0

    @property
    def failed(self) -> bool:
        return self.status == "failed"


def _preview_array(image: pb.PreviewImage) -> "np.ndarray | None":
    import numpy as np

    if not image.data:
        return None
    return np.frombuffer(image.data, "<f2").reshape(image.height, image.width, image.channels)


def _source_image(source: str | os.PathLike[str]) -> pb.SourceImage:
    path = Path(source)
    try:
        return pb.SourceImage(label=path.name, data=path.read_bytes())
    except OSError as exc:
        raise ClientError(f"source {path}: cannot read ({exc.strerror})") from exc


def _number(value: float, digits: int = 4) -> float | None:
    return round(value, digits) if math.isfinite(value) else None


def _face_dict(face: pb.FaceQC) -> dict[str, Any]:
    return {
        "index": face.index,
        "swapped": face.swapped,
        "source": face.source_label,
        "identity_distance": _number(face.identity_distance),
        "identity_distance_plate": _number(face.identity_distance_plate),
        "box": [round(v, 1) for v in face.box],
        "pose": {"yaw": round(face.yaw, 1), "pitch": round(face.pitch, 1), "roll": round(face.roll, 1)},
        "track": face.track_id,
        "cache": "hit" if face.cache_hit else "miss",
        "jitter_raw": _number(face.jitter_raw, 3),
        "jitter_smoothed": _number(face.jitter_smoothed, 3),
        "fp32_fallback": face.fp32_fallback,
        "detector": face.detector,
        "size": _number(face.size, 1),
        "skipped": face.skipped,
        "profile_fade": round(face.profile_fade, 3),
        "source_weights": [(w.label, round(w.weight, 4)) for w in face.source_weights],
    }


class _ResultFile:
    """A streamed result on its way to its job's output path: the chunks are checked (order, size) and
    written as they arrive to a temporary file beside it (on a helper thread: ``QueuedWriter``), renamed
    into place when the last one is in. Parts the server sends as copies of the frame's input (``FrameCopy``,
    only where the frame was sent with ``input_copies``: ``sent`` says from which file, as it was) are read from
    that file, which must still be as it was sent when the result is complete.

    A result that cannot be written (read-only folder, full disk, an input changed since it was sent) is still
    received to its end, then reported as the job's failed outcome; nothing is left at the output path.
    """

    def __init__(self, result: pb.FrameResult, job: FrameJob, sent: _SentInput | None = None) -> None:
        self.result = result
        self.job = job
        self.error = ""
        self._kind, self._subject = "write", job.output_path  # what failed, and the file its message names
        self._sent = sent
        self._input: InputCopy | None = None
        self._cursor = ChunkCursor(result.total_bytes, result.total_bytes)
        self._writer: QueuedWriter | None = None
        try:
            # its disk space reserved up front, as announced (within reason: a server's word is not trusted)
            reserved = result.total_bytes if result.total_bytes <= _RESERVE_MAX_BYTES else None
            self._writer = QueuedWriter(AtomicFile(job.output_path, size=reserved))
        except OSError as exc:
            self.error = f"cannot write the result ({exc.strerror or exc})"

    def add(self, offset: int, data: bytes | memoryview) -> bool:
        """Take one chunk (``bytes`` or a view of them); True when the result is complete (and committed,
        unless it failed)."""
        self._cursor.advance(offset, len(data))
        if self._writer is not None:
            self._writer.write(data)
        return self._completed()

    def copy(self, offset: int, input_offset: int, length: int) -> bool:
        """Take ``length`` bytes at ``offset`` from the input as sent, at ``input_offset`` (ChunkError when the frame
        was not sent for copies, or the range is not in it); True when the result is complete, as :meth:`add`."""
        if self._sent is None:
            raise ChunkError(f"a copy of the input for frame id {self.result.frame_id}, not sent with input_copies")
        if input_offset + length > self._sent.size:
            raise ChunkError(f"a copy of input bytes {input_offset}..{input_offset + length}, beyond its "
                             f"{self._sent.size} bytes")
        self._cursor.advance_range(offset, length)
        if self._writer is not None:
            try:
                if self._input is None:
                    self._input = InputCopy(self._sent.path, self._sent.identity)
                for data in self._input.read(input_offset, length, MAX_CHUNK_BYTES):
                    self._writer.write(data)
            except OSError as exc:
                self._failed_input(self._sent.path, exc)
        return self._completed()

    def _failed_input(self, path: str, exc: OSError) -> None:
        why = str(exc) if isinstance(exc, InputChanged) else f"cannot be read again ({exc.strerror or exc})"
        self.error = f"{why}; the result reuses parts of it and was not written (render the frame again)"
        self._kind, self._subject = "input", path
        self.discard()

    def _completed(self) -> bool:
        """True when every byte is in; the file is then committed (after checking that the input copied from is
        still as it was sent) or, failing that, discarded with the reason in ``error``."""
        if not self._cursor.complete:
            return False
        if self._input is not None:
            try:
                self._input.check_unchanged()
            except OSError as exc:
                self._failed_input(self._input.path, exc)
        self._close_input()
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.finish()
            except OSError as exc:
                self.error = f"cannot write the result ({exc.strerror or exc})"
        return True

    def _close_input(self) -> None:
        source, self._input = self._input, None
        if source is not None:
            source.close()

    def discard(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.abandon()
        self._close_input()

    def outcome(self) -> "FrameOutcome":
        """The failed outcome of a result that could not be written."""
        job = self.job
        return FrameOutcome(job.frame_number, "failed", self._kind, f"{self._subject} (frame {job.frame_number}): "
                            f"{self.error}", job.input_path, "")


class FaceBridgeClient:
    """A connection to one facebridge server.

    Args:
        address: ``host:port``.
        timeout: deadline in seconds for the unary calls.
        token: sent with every call (``authorization: Bearer``); None: found as the server finds it
            (``$FACEBRIDGE_TOKEN``, else ``$XDG_CONFIG_HOME/facebridge/token``); "" sends none.
        tls: PEM files: TLS checked against ``tls.ca``, with ``tls.cert``/``tls.key`` as the client certificate
            for mutual TLS (``facebridge.auth.PLAIN``: plain TCP); None: ``$FACEBRIDGE_TLS_CA``,
            ``$FACEBRIDGE_TLS_CERT``, ``$FACEBRIDGE_TLS_KEY`` (no CA: plain TCP).
    """

    def __init__(self, address: str, timeout: float = 120.0, *, token: str | None = None,
                 tls: ClientTLS | None = None) -> None:
        self.address = address
        self.timeout = timeout
        if token is None:
            try:
                token = find_token(os.environ)
            except TokenError as exc:
                raise ClientError(str(exc)) from exc
        self._raw_channel, self._channel = open_channel(
            address,
            [
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.service_config", _SERVICE_CONFIG),
                ("grpc.enable_retries", 1),
            ],
            token,
            client_tls(os.environ) if tls is None else tls,
        )
        self._stub = pb_grpc.FaceBridgeStub(self._channel)
        # the streamed frames' chunks are read into the buffer of the previous frame
        self._chunk_buffers = BufferPool(CHUNK_PREFIX_BYTES + MAX_CHUNK_BYTES)
        # the frame streams as the stub's, but their chunks leave already encoded (``encoded_chunk``) and
        # results' chunks arrive as views into the received bytes (``chunk_deserializer``)
        self._process_frames = self._channel.stream_stream(
            "/facebridge.v1.FaceBridge/ProcessFrames", request_serializer=serialize,
            response_deserializer=chunk_deserializer(pb.ProcessFramesResponse))
        self._analyse_shot = self._channel.stream_stream(
            "/facebridge.v1.FaceBridge/AnalyseShot", request_serializer=serialize,
            response_deserializer=pb.AnalyseProgress.FromString)

    def __enter__(self) -> "FaceBridgeClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()
        self._raw_channel.close()

    def wait_ready(self, timeout: float) -> None:
        """Block until the server's health service says SERVING, or raise ClientError after ``timeout`` s."""
        try:
            grpc.channel_ready_future(self._raw_channel).result(timeout=timeout)
            reply = health_pb2_grpc.HealthStub(self._channel).Check(
                health_pb2.HealthCheckRequest(service="facebridge.v1.FaceBridge"), timeout=timeout
            )
        except grpc.FutureTimeoutError as exc:
            raise ClientError(f"server {self.address} did not answer within {timeout:.0f} s", retryable=True) from exc
        except grpc.RpcError as exc:
            raise _mapped(exc, "health check", self.address) from exc
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            raise ClientError(f"server {self.address} is not serving", retryable=True)

    def server_info(self) -> pb.GetServerInfoResponse:
        try:
            return self._stub.GetServerInfo(pb.GetServerInfoRequest(), timeout=self.timeout)
        except grpc.RpcError as exc:
            raise _mapped(exc, "GetServerInfo", self.address) from exc

    def open_session(
        self,
        sources: Sequence[str | os.PathLike[str]],
        *,
        shot: str = "",
        params: RenderParams | None = None,
        output_format: str = "exr",
        client: str = "",
        quality_checks: bool = True,
        **overrides: object,
    ) -> SessionInfo:
        """Open a session for ``shot`` with ``params`` (fields may also be given as keyword overrides)."""
        try:
            params = (params or RenderParams()).with_overrides(overrides)
        except (SettingError, TypeError) as exc:
            raise ClientError(str(exc)) from exc
        images = [_source_image(source) for source in sources]
        reference = _source_image(params.face[4:]) if params.face.startswith("ref:") else None
        request = pb.OpenSessionRequest(
            client=client or f"{os.environ.get('USER', 'unknown')}@{socket.gethostname()}",
            shot=shot,
            sources=images,
            params=to_proto(params, output_format, reference, skip_quality_checks=not quality_checks),
        )
        try:
            reply = self._stub.OpenSession(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            raise _mapped(exc, "OpenSession", self.address) from exc
        return SessionInfo(
            session_id=reply.session_id,
            params_hash=reply.params_hash,
            model_ids=list(reply.model_ids),
            sources=[{"label": s.label, "sha256": s.sha256, "yaw": s.yaw, "pitch": s.pitch, "roll": s.roll}
                     for s in reply.sources],
            notes=list(reply.notes),
        )

    def close_session(self, session_id: str) -> tuple[int, int]:
        try:
            reply = self._stub.CloseSession(pb.CloseSessionRequest(session_id=session_id), timeout=self.timeout)
        except grpc.RpcError as exc:
            raise _mapped(exc, "CloseSession", self.address) from exc
        return reply.frames_processed, reply.frames_failed

    def process(self, session_id: str, jobs: Sequence[FrameJob], use_paths: bool = False,
                input_copies: bool = True) -> Iterator[FrameOutcome]:
        """Send ``jobs`` through the server; yield one outcome per job as results come back.

        Results are written to each job's ``output_path`` atomically (stream transport: by this client;
        path transport: by the server). A frame that fails leaves nothing at its output path.
        ``input_copies`` (stream transport): the server may send the parts of a result that are the input's own
        bytes (an EXR's unchanged chunks) as references, which are then read from the input file here; a file
        that changed since it was sent then fails its frame. Off: every byte of every result is sent.
        """
        sending = _Sending()
        call = self._process_frames(self._requests(session_id, jobs, use_paths, input_copies, sending))
        receiving: _ResultFile | None = None
        try:
            for message in call:
                part: ChunkView | pb.FrameCopy
                if isinstance(message, ChunkView):
                    part = message
                elif (kind := message.WhichOneof("payload")) == "copy":
                    part = message.copy
                elif kind == "result":
                    result = message.result
                    if result.frame_id == sending.frame_id:  # the frame the stream stopped in
                        sending.check()
                    if receiving is not None:
                        raise ClientError(f"server sent frame id {result.frame_id} before the rest of frame id "
                                          f"{receiving.result.frame_id}")
                    sent = sending.inputs.pop(result.frame_id, None)
                    if result.total_bytes:
                        receiving = _ResultFile(result, jobs[result.frame_id], sent)
                        continue
                    yield self._outcome(jobs[result.frame_id], result)
                    continue
                else:
                    raise ClientError(f"ProcessFrames: server {self.address} sent a message with no result")
                if receiving is None or part.frame_id != receiving.result.frame_id:
                    raise ClientError(f"server sent a chunk for frame id {part.frame_id} out of order")
                complete = receiving.add(part.offset, part.data) if isinstance(part, ChunkView) else \
                    receiving.copy(part.offset, part.input_offset, part.length)
                if not complete:
                    continue
                done, receiving = receiving, None
                yield done.outcome() if done.error else self._outcome(done.job, done.result)
            sending.check()
        except grpc.RpcError as exc:
            sending.check()
            raise _mapped(exc, "ProcessFrames", self.address) from exc
        except ChunkError as exc:
            raise ClientError(f"ProcessFrames: server {self.address} sent a result that does not add up: {exc}") \
                from exc
        finally:
            if receiving is not None:  # the stream ended inside a result: nothing is left at its output path
                receiving.discard()
            call.cancel()

    @staticmethod
    def _outcome(job: FrameJob, result: pb.FrameResult) -> FrameOutcome:
        return FrameOutcome(
            frame_number=job.frame_number,
            status=_STATUS_NAMES[result.status.code],
            kind=result.status.kind,
            message=result.status.message,
            input_path=job.input_path,
            output_path=job.output_path if result.status.code != pb.FrameStatus.FAILED else "",
            faces=[_face_dict(f) for f in result.qc.faces],
            timings_ms={k: round(v, 2) for k, v in result.qc.timings_ms.items()},
            analysed=result.qc.analysed,
        )

    def analyse(self, session_id: str, jobs: Sequence[FrameJob], use_paths: bool = False) -> Iterator[AnalyseOutcome]:
        """Analyse the session's shot over ``jobs`` (increasing frame order); one outcome per frame."""
        sending = _Sending()
        call = self._analyse_shot(self._requests(session_id, jobs, use_paths, False, sending))
        try:
            for reply in call:
                if reply.frame_number == sending.frame_number:  # the frame the stream stopped in
                    sending.check()
                yield AnalyseOutcome(reply.frame_number, _STATUS_NAMES[reply.status.code], reply.status.kind,
                                     reply.status.message, reply.cut, reply.keyframe, reply.replayed, list(reply.tracks))
            sending.check()
        except grpc.RpcError as exc:
            sending.check()
            raise _mapped(exc, "AnalyseShot", self.address) from exc
        finally:
            call.cancel()

    def export_analysis(self, shot: str) -> bytes:
        """The shot-analysis file of ``shot`` (``facebridge.analysis_file``'s format) as the server's shot
        database holds it."""
        call = self._stub.ExportAnalysis(pb.ExportAnalysisRequest(shot=shot), timeout=self.timeout)
        assembler: Reassembler | None = None
        try:
            for chunk in call:
                if assembler is None:
                    assembler = Reassembler(chunk.total_bytes, analysis_file.MAX_BYTES)
                assembler.add(chunk.offset, chunk.data)
        except grpc.RpcError as exc:
            raise _mapped(exc, "ExportAnalysis", self.address) from exc
        except ValueError as exc:  # ChunkError: the server's chunks do not add up
            raise ClientError(f"ExportAnalysis: {exc}") from exc
        finally:
            call.cancel()
        if assembler is None or not assembler.complete:
            raise ClientError(f"ExportAnalysis: server {self.address} sent an incomplete shot-analysis file")
        return bytes(assembler.result())

    def import_analysis(self, session_id: str, data: bytes) -> dict[str, Any]:
        """Replace the analysis of the session's shot on the server with a shot-analysis file's; afterwards the
        session's analyses only replay it. Returns the server's summary (shot, frames, tracks, range, sha256)."""
        def requests() -> Iterator[pb.ImportAnalysisRequest]:
            yield pb.ImportAnalysisRequest(start=pb.ImportAnalysisStart(session_id=session_id, total_bytes=len(data)))
            for offset, piece in split_chunks(data, MAX_CHUNK_BYTES):
                yield pb.ImportAnalysisRequest(chunk=pb.AnalysisChunk(offset=offset, data=bytes(piece)))

        try:
            reply = self._stub.ImportAnalysis(requests(), timeout=self.timeout)
        except grpc.RpcError as exc:
            raise _mapped(exc, "ImportAnalysis", self.address) from exc
        return {"shot": reply.shot, "frames": reply.frames, "tracks": reply.tracks,
                "first_frame": reply.first_frame, "last_frame": reply.last_frame, "sha256": reply.sha256}

    def list_shots(self, shot: str = "", with_frames: bool = False, smoothing: float | None = None) -> list[ShotListing]:
        """The shots in the server's shot database (only ``shot`` when given), with per-frame summaries
        (cut, keyframe, tracks, landmark jitter at ``smoothing``) on request."""
        request = pb.ListShotsRequest(shot=shot, with_frames=with_frames)
        if smoothing is not None:
            request.smoothing = smoothing
        try:
            reply = self._stub.ListShots(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            raise _mapped(exc, "ListShots", self.address) from exc
        return [ShotListing(s.shot, s.first_frame, s.last_frame, s.frames, list(s.tracks), s.cuts, s.keyframes,
                            s.created, [{"frame": f.frame_number, "cut": f.cut, "keyframe": f.keyframe,
                                         "tracks": list(f.tracks), "jitter_raw": _number(f.jitter_raw, 3),
                                         "jitter_smoothed": _number(f.jitter_smoothed, 3)}
                                        for f in s.frame_summaries])
                for s in reply.shots]

    def preview(
        self,
        session_id: str,
        frame_number: int,
        *,
        input_path: str | os.PathLike[str] | None = None,
        data: bytes | None = None,
        name: str = "",
        max_side: int = 0,
        region: str = "faces",
        include_plate: bool = False,
        omit_rendered: bool = False,
        include_regions: bool = False,
        params: RenderParams | None = None,
        quality_checks: bool = True,
        timeout: float | None = None,
    ) -> PreviewResult:
        """A reduced-size preview of one frame, rendered with the session's models and ``params``' compositing
        and temporal controls (None = the session's): a re-composite from the server's cache when the faces
        were rendered before. The plate is a path the server reads (same machine) or the encoded file.
        """
        import time

        if (input_path is None) == (data is None):
            raise ClientError("preview: give the plate as input_path or as data (one of them)")
        request = pb.PreviewRequest(
            session_id=session_id, frame_number=frame_number,
            name=name or (os.path.basename(os.fspath(input_path)) if input_path is not None else ""),
            max_side=max_side, include_plate=include_plate, omit_rendered=omit_rendered,
            include_regions=include_regions,
            region=pb.PREVIEW_REGION_FRAME if region == "frame" else pb.PREVIEW_REGION_FACES,
        )
        if input_path is not None:
            request.input_path = os.path.abspath(os.fspath(input_path))
        elif data is not None:  # (one of the two, checked above)
            request.data = bytes(data)
        if params is not None or not quality_checks:
            request.params.CopyFrom(to_proto(params or RenderParams(), "exr", None,
                                             skip_quality_checks=not quality_checks))
        started = time.perf_counter()
        try:
            reply = self._stub.Preview(request, timeout=timeout or self.timeout)
        except grpc.RpcError as exc:
            raise _mapped(exc, "Preview", self.address) from exc
        round_trip = (time.perf_counter() - started) * 1000.0
        import numpy as np

        faces = []
        for face in reply.faces:
            entry = _face_dict(face.qc)
            entry["landmarks"] = np.asarray(face.landmarks, np.float32).reshape(-1, 2)
            faces.append(entry)
        labels = (np.frombuffer(reply.regions.labels, np.uint8).reshape(reply.regions.height, reply.regions.width)
                  if reply.regions.labels else None)
        return PreviewResult(
            frame_number=reply.frame_number, status=_STATUS_NAMES[reply.status.code], kind=reply.status.kind,
            message=reply.status.message, rendered=_preview_array(reply.rendered), plate=_preview_array(reply.plate),
            box=(reply.x0, reply.y0, reply.x1, reply.y1), frame_size=(reply.frame_width, reply.frame_height),
            faces=faces, labels=labels, region_names=list(reply.regions.region_names),
            timings_ms=dict(reply.timings_ms), analysed=reply.analysed, colourspace=reply.colourspace,
            round_trip_ms=round_trip,
        )

    def _requests(self, session_id: str, jobs: Sequence[FrameJob], use_paths: bool, input_copies: bool,
                  sending: _Sending) -> Iterator[pb.ProcessFramesRequest | bytes]:
        """The stream's messages; a frame's chunks come encoded (``ProcessFramesRequest`` bytes), each read from
        its file as it is about to leave (``InputFile``). A file that cannot be read to its end as it was
        when opened ends the stream before its last chunk (the server reports the frame incomplete and
        processes nothing of it) and is noted in ``sending``; a file that cannot be opened is announced
        empty (the server answers with a failed frame naming it) and the stream goes on. With ``input_copies``,
        each file not changed in the last ``FRESH_S`` is sent offering them (``_ResultFile``) and noted in
        ``sending``."""
        yield pb.ProcessFramesRequest(start=pb.StreamStart(session_id=session_id))
        for frame_id, job in enumerate(jobs):
            name = os.path.basename(job.input_path)
            if use_paths:
                yield pb.ProcessFramesRequest(header=pb.FrameHeader(
                    frame_id=frame_id, frame_number=job.frame_number, name=name, transport=pb.TRANSPORT_PATH,
                    input_path=os.path.abspath(job.input_path), output_path=os.path.abspath(job.output_path)))
                continue
            try:
                source = InputFile(job.input_path)
            except OSError:
                yield pb.ProcessFramesRequest(header=pb.FrameHeader(
                    frame_id=frame_id, frame_number=job.frame_number, name=name, transport=pb.TRANSPORT_STREAM))
                continue
            with source, self._chunk_buffers.lend() as buffer:
                copies = input_copies and not source.fresh
                if copies:
                    sending.inputs[frame_id] = _SentInput(source.path, source.identity)
                yield pb.ProcessFramesRequest(header=pb.FrameHeader(
                    frame_id=frame_id, frame_number=job.frame_number, name=name, transport=pb.TRANSPORT_STREAM,
                    total_bytes=source.size, input_copies=copies))
                try:
                    yield from source.chunks(buffer, CHUNK_PREFIX_BYTES, MAX_CHUNK_BYTES, functools.partial(
                        chunk_prefix, pb.ProcessFramesRequest, frame_id))
                except OSError as exc:  # InputChanged, or a read error after the first chunks left
                    why = str(exc) if isinstance(exc, InputChanged) else f"cannot read ({exc.strerror or exc})"
                    sending.stop(frame_id, job.frame_number, f"{job.input_path} (frame {job.frame_number}): {why}; "
                                 "the stream was stopped before the frame was complete")
                    return


@dataclass(frozen=True)
class _SentInput:
    """The file a frame was sent from, and what it was when opened (``InputFile.identity``)."""

    path: str
    identity: tuple[int, ...]

    @property
    def size(self) -> int:
        return self.identity[0]


class _Sending:
    """What the request stream of a call ran into: a frame whose file could not be sent whole (the call then
    fails with ``error``, once the frames before it are reported); the inputs of the frames sent with
    ``input_copies``, by frame id, until their results are in (``inputs``)."""

    def __init__(self) -> None:
        self.error = ""
        self.frame_id = -1
        self.frame_number: int | None = None
        self.inputs: dict[int, _SentInput] = {}

    def stop(self, frame_id: int, frame_number: int, error: str) -> None:
        self.frame_id, self.frame_number, self.error = frame_id, frame_number, error

    def check(self) -> None:
        """Raise the call's ClientError when the stream was stopped."""
        if self.error:
            raise ClientError(self.error)
