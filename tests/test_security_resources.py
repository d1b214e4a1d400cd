"""Principle 9, resources: what a client can make the server spend is bounded before it is spent.

Every probe runs against a real server on loopback with tight limits, and is itself bounded in time (call
deadlines) and, where the finding was memory, in the memory it may cost (this process's VmRSS/VmHWM: the
server runs in it).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from facebridge_wire.chunking import MAX_CHUNK_BYTES
from facebridge_wire.v1 import facebridge_pb2 as pb
from grpc_health.v1 import health_pb2, health_pb2_grpc
from probes import RawStub, chunk, header, held, memory_kib, png_bomb, reset_peak, start, start_tight_server

MAX_STREAMS = 2
STREAM_IDLE_S = 1.5
PER_PEER = 3
SESSION_IDLE_S = 2.0


@pytest.fixture(scope="module")
def tight(dlib_models: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    running = start_tight_server(dlib_models, tmp_path_factory.mktemp("tight"), max_streams=MAX_STREAMS,
                                 stream_idle_s=STREAM_IDLE_S, max_sessions=8, max_sessions_per_peer=PER_PEER,
                                 session_idle_s=SESSION_IDLE_S, max_workers=2, memory_budget=64 * 1024**2)
    yield running
    running.stop(grace=1.0)


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return png_bomb(tmp_path_factory.mktemp("bomb") / "bomb.png").read_bytes()


@pytest.fixture()
def raw(tight: Any) -> Iterator[RawStub]:
    stub = RawStub(f"127.0.0.1:{tight.port}")
    yield stub
    stub.close()


@pytest.fixture()
def session_id(raw: RawStub, tight: Any) -> Iterator[str]:
    """An empty session (no sources: enough for the stream probes), closed afterwards."""
    sid = raw.open_session(shot="probe")
    yield sid
    try:
        raw.stub.CloseSession(pb.CloseSessionRequest(session_id=sid), timeout=10, metadata=raw.metadata)
    except grpc.RpcError:
        pass


def _audit(running: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(running.service.audit.path).read_text().splitlines()]


def _code(call: Any) -> tuple[grpc.StatusCode, str, list[Any]]:
    replies: list[Any] = []
    try:
        for reply in call:
            replies.append(reply)
    except grpc.RpcError as exc:
        return exc.code(), exc.details() or "", replies
    return grpc.StatusCode.OK, "", replies


# -- memory set by the client ------------------------------------------------------------------------------

def test_header_announcing_gigabytes_costs_nothing(raw: RawStub, session_id: str, tight: Any) -> None:
    """A 20-byte header announcing 2 GiB is refused at once; one announcing just under the frame limit
    allocates nothing (the buffer grows with what arrives) and the truncated frame is answered, not silent."""
    code, detail, _ = _code(raw.process(iter([start(session_id), header(0, 2 * 1024**3)]), timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "exceeds the limit" in detail

    reset_peak()
    before = memory_kib()
    started = time.monotonic()
    limit = tight.service.engine.max_frame_bytes
    code, detail, replies = _code(raw.process(iter([start(session_id), header(0, limit, number=7),
                                                    chunk(0, 0, b"x" * 1000)]), timeout=10))
    after = memory_kib()
    assert code == grpc.StatusCode.OK, detail
    assert time.monotonic() - started < 10
    assert after["VmRSS"] - before["VmRSS"] < 64 * 1024, (before, after)
    assert after["VmHWM"] - before["VmHWM"] < 64 * 1024, (before, after)  # not even briefly
    (reply,) = replies
    assert reply.result.status.code == pb.FrameStatus.FAILED
    assert reply.result.frame_number == 7
    assert f"stream ended after 1000 of {limit} bytes" in reply.result.status.message


def test_chunk_over_max_chunk_bytes_is_refused(raw: RawStub, session_id: str) -> None:
    size = 30 * 1024**2
    code, detail, _ = _code(raw.process(iter([start(session_id), header(0, size), chunk(0, 0, b"\0" * size)]),
                                        timeout=20))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert f"exceeds the limit of {MAX_CHUNK_BYTES} bytes" in detail


def test_two_pending_frames_at_most(raw: RawStub, session_id: str) -> None:
    code, detail, _ = _code(raw.process(iter([start(session_id), header(0, 100), header(1, 100), header(2, 100)]),
                                        timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "2 frames are announced and incomplete" in detail


def test_png_bomb_is_refused_before_decoding(bomb: bytes, raw: RawStub, session_id: str) -> None:
    """An ~800 KB PNG announcing 16384x16384 (inside the width/height limits) would decode to 3 GiB of float
    pixels: the decode budget refuses it from its header, in milliseconds and without the memory."""
    data = bomb
    assert len(data) < MAX_CHUNK_BYTES
    reset_peak()
    before = memory_kib()
    started = time.monotonic()
    code, detail, replies = _code(raw.process(iter([start(session_id), header(0, len(data), "bomb.png"),
                                                    chunk(0, 0, data)]), timeout=20))
    elapsed = time.monotonic() - started
    after = memory_kib()
    assert code == grpc.StatusCode.OK, detail
    (reply,) = replies
    assert reply.result.status.code == pb.FrameStatus.FAILED
    assert "16384x16384x3" in reply.result.status.message and "decode budget" in reply.result.status.message
    assert elapsed < 5.0
    assert after["VmHWM"] - before["VmHWM"] < 256 * 1024, (before, after)


def test_png_bomb_as_source_image_is_refused(bomb: bytes, raw: RawStub) -> None:
    data = bomb
    with pytest.raises(grpc.RpcError) as refused:
        raw.open_session(sources=[pb.SourceImage(label="bomb.png", data=data)], timeout=20)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "decode budget" in (refused.value.details() or "")


def test_smoothing_is_bounded_even_without_a_session(raw: RawStub, tight: Any) -> None:
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as refused:
        raw.stub.ListShots(pb.ListShotsRequest(with_frames=True, smoothing=5e5), timeout=10, metadata=raw.metadata)
    assert time.monotonic() - started < 5
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "smoothing" in (refused.value.details() or "")
    refusals = [r for r in _audit(tight) if r["event"] == "refused" and r["method"] == "ListShots"]
    assert refusals and refusals[-1]["code"] == "INVALID_ARGUMENT"


def test_memory_budget_is_one_number_divided(tight: Any) -> None:
    from inference_server.server.engine import MemoryShares

    engine = tight.service.engine
    shares = MemoryShares.of(64 * 1024**2)
    assert engine.memory == shares
    assert shares.payloads + shares.memos + shares.preview_plates == 64 * 1024**2
    assert engine.cache.memory_bytes == shares.payloads
    assert engine.memos.working.budget + engine.memos.matched.budget + engine.memos.composited.budget <= shares.memos


# -- starvation ---------------------------------------------------------------------------------------------

def test_idle_streams_cannot_starve_unary_calls_or_health(raw: RawStub, session_id: str, tight: Any) -> None:
    """More idle streams than the server allows: the extra ones are refused at once, GetServerInfo and the
    health check still answer (on a fresh channel too), and the idle ones end after ``stream_idle_s``."""
    release = threading.Event()
    calls = [raw.process(held([start(session_id)], release), timeout=30) for _ in range(MAX_STREAMS + 4)]
    results: list[tuple[grpc.StatusCode, str, list[Any]]] = [(grpc.StatusCode.UNKNOWN, "", [])] * len(calls)

    def drain(i: int) -> None:
        results[i] = _code(calls[i])

    threads = [threading.Thread(target=drain, args=(i,)) for i in range(len(calls))]
    try:
        for t in threads:
            t.start()
        time.sleep(0.3)
        fresh = RawStub(f"127.0.0.1:{tight.port}")
        try:
            started = time.monotonic()
            fresh.stub.GetServerInfo(pb.GetServerInfoRequest(), timeout=3, metadata=fresh.metadata)
            health = health_pb2_grpc.HealthStub(fresh.channel).Check(
                health_pb2.HealthCheckRequest(service="facebridge.v1.FaceBridge"), timeout=3)
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            assert time.monotonic() - started < 3
        finally:
            fresh.close()
        for t in threads:
            t.join(timeout=STREAM_IDLE_S + 10)
    finally:
        release.set()
    codes = [r[0] for r in results]
    assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) >= 4, results
    assert codes.count(grpc.StatusCode.DEADLINE_EXCEEDED) == MAX_STREAMS, results
    busy = next(r for r in results if r[0] == grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert f"{MAX_STREAMS} streams are running" in busy[1]
    idle = next(r for r in results if r[0] == grpc.StatusCode.DEADLINE_EXCEEDED)
    assert f"sent nothing for {STREAM_IDLE_S:g} s" in idle[1]


def test_sessions_capped_per_peer_and_expire_when_idle(raw: RawStub, tight: Any) -> None:
    """A burst of empty sessions from one client stops at the per-peer cap with a clear message, and the
    server recovers on its own (idle sessions expire) instead of refusing everyone until a restart."""
    opened: list[str] = []
    refused: list[str] = []
    started = time.monotonic()
    for _ in range(20):
        try:
            opened.append(raw.open_session(shot="burst", timeout=5))
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            refused.append(exc.details() or "")
    assert len(opened) == PER_PEER and len(refused) == 20 - PER_PEER
    assert "the limit per client" in refused[0] and "close one first" in refused[0]
    assert time.monotonic() - started < 10

    time.sleep(SESSION_IDLE_S + 1.5)  # the sweeper runs every second here
    assert len(tight.service.engine.sessions) == 0
    with pytest.raises(grpc.RpcError) as gone:
        raw.stub.CloseSession(pb.CloseSessionRequest(session_id=opened[0]), timeout=5, metadata=raw.metadata)
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND and "expired" in (gone.value.details() or "")
    expired = {r["session"] for r in _audit(tight) if r["event"] == "expire"}
    assert set(opened) <= expired
    again = raw.open_session(shot="after the burst", timeout=5)
    raw.stub.CloseSession(pb.CloseSessionRequest(session_id=again), timeout=5, metadata=raw.metadata)


def test_a_streaming_session_does_not_expire_mid_stream(raw: RawStub, tight: Any) -> None:
    from inference_server.server.sessions import SessionRegistry

    registry = SessionRegistry(4, 2, idle_s=0.0)
    session = tight.service.engine.sessions.get(raw.open_session(shot="busy"))
    tight.service.engine.sessions.remove(session.id)
    registry.add(session)
    session.stream_started()
    assert registry.expire_idle() == []
    session.stream_ended()
    assert registry.expire_idle() == [session]


def test_per_peer_cap_counts_by_peer() -> None:
    from inference_server.server.errors import ServerBusy
    from inference_server.server.sessions import Session, SessionParams, SessionRegistry

    registry = SessionRegistry(max_sessions=3, max_per_peer=2)

    def session(peer: str) -> Session:
        return Session(SessionRegistry.new_id(), "c", "s", SessionParams(), [], [], "", [], peer=peer)

    registry.add(session("ipv4:10.0.0.1"))
    registry.add(session("ipv4:10.0.0.1"))
    with pytest.raises(ServerBusy, match="from ipv4:10.0.0.1"):
        registry.add(session("ipv4:10.0.0.1"))
    registry.add(session("ipv4:10.0.0.2"))  # another client still gets in
    with pytest.raises(ServerBusy, match="3 sessions are open on this server"):
        registry.add(session("ipv4:10.0.0.3"))
