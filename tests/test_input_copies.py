"""A streamed result's unchanged EXR chunks come back as references to the input the client sent (``FrameCopy``),
and the client copies them from that file: the same bytes as the whole result, fewer of them on the wire, and a
frame whose input changed after it was sent fails instead of mixing two files.

Against a real server on a loopback port with real faces and real EXR files; a hostile server (a bare gRPC
handler answering with crafted messages) for what a client must refuse.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from facebridge_wire.chunking import MAX_CHUNK_BYTES, chunk_deserializer, serialize
from facebridge_wire.v1 import facebridge_pb2 as pb
from support import make_plate

from facebridge.client import grpc_client
from facebridge.client.errors import ClientError
from facebridge.client.grpc_client import FaceBridgeClient, FrameJob
from facebridge.client.input_buffer import FRESH_S
from inference_server.plates.encoded_file import EncodedFile, Piece
from inference_server.server.messages import output_messages

SOURCE = "fr_biden2.jpg"
TARGET = "fr_obama.jpg"


def _settled(*paths: Path) -> None:
    """Wait until none of ``paths`` changed within ``FRESH_S`` (a fresh file is sent without copies)."""
    newest = max(p.stat().st_ctime for p in paths)
    time.sleep(max(0.0, newest + FRESH_S + 0.05 - time.time()))


class _Tally:
    """The result bytes a client took as chunks and as copies of its input (a spy on ``_ResultFile``)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.chunked = self.copied = 0
        add, copy = grpc_client._ResultFile.add, grpc_client._ResultFile.copy

        def counted_add(result_file: Any, offset: int, data: bytes | memoryview) -> bool:
            self.chunked += len(data)
            return add(result_file, offset, data)

        def counted_copy(result_file: Any, offset: int, input_offset: int, length: int) -> bool:
            self.copied += length
            return copy(result_file, offset, input_offset, length)

        monkeypatch.setattr(grpc_client._ResultFile, "add", counted_add)
        monkeypatch.setattr(grpc_client._ResultFile, "copy", counted_copy)


def _process(client: FaceBridgeClient, faces_dir: Path, jobs: list[FrameJob], **kwargs: Any) -> Iterator[Any]:
    session = client.open_session([faces_dir / SOURCE], shot="copies")
    try:
        yield from client.process(session.session_id, jobs, **kwargs)
    finally:
        client.close_session(session.session_id)


@pytest.mark.parametrize("compression", ["zip", "dwaa"])
def test_a_result_with_copies_is_the_whole_result_byte_for_byte(
    client: FaceBridgeClient, faces_dir: Path, dlib_models: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    compression: str,
) -> None:
    plate, _ = make_plate(faces_dir / TARGET, tmp_path / "plate.exr", dlib_models, compression=compression)
    _settled(plate)
    tally = _Tally(monkeypatch)
    outputs = {}
    for mode, kwargs in {"copies": {}, "no copies": {"input_copies": False}, "path": {"use_paths": True}}.items():
        tally.chunked = tally.copied = 0
        out = tmp_path / f"out_{mode.replace(' ', '_')}.exr"
        (outcome,) = _process(client, faces_dir, [FrameJob(1, str(plate), str(out))], **kwargs)
        assert outcome.status == "ok", outcome.message
        outputs[mode] = out.read_bytes()
        if mode == "copies":
            size = len(outputs[mode])
            # the face changes a band of rows; the chunks above and below it are the plate's own bytes
            assert tally.chunked + tally.copied == size
            assert tally.copied > 0.3 * size, (tally.chunked, tally.copied)
        elif mode == "no copies":
            assert (tally.chunked, tally.copied) == (len(outputs[mode]), 0)
    assert outputs["copies"] == outputs["no copies"] == outputs["path"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out_copies.exr", "out_no_copies.exr", "out_path.exr",
                                                          "plate.exr"]


def test_a_fresh_input_is_answered_with_every_byte(
    client: FaceBridgeClient, faces_dir: Path, dlib_models: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A file changed just before it was opened could change again within the same clock tick, unseen: the
    client does not offer copies of it."""
    plate, _ = make_plate(faces_dir / TARGET, tmp_path / "plate.exr", dlib_models)
    tally = _Tally(monkeypatch)
    (outcome,) = _process(client, faces_dir, [FrameJob(1, str(plate), str(tmp_path / "out.exr"))])
    assert time.time() - plate.stat().st_ctime < FRESH_S, "the plate was not fresh when sent; the machine is too slow"
    assert outcome.status == "ok", outcome.message
    assert (tally.chunked, tally.copied) == ((tmp_path / "out.exr").stat().st_size, 0)


def _rewrite(path: Path) -> None:
    path.write_bytes(path.read_bytes())


def _replace(path: Path) -> None:
    shutil.copyfile(path, path.with_suffix(".tmp"))
    os.replace(path.with_suffix(".tmp"), path)


def _truncate(path: Path) -> None:
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size // 2)


@pytest.mark.parametrize("change", [_rewrite, _replace, _truncate], ids=["rewritten", "replaced", "truncated"])
def test_an_input_changed_after_it_was_sent_fails_its_frame_and_leaves_nothing(
    client: FaceBridgeClient, faces_dir: Path, dlib_models: Any, tmp_path: Path, change: Callable[[Path], None],
) -> None:
    """The second frame's input changes after it was sent, before its result is taken (the client takes a
    result only as its outcomes are asked for): its result, which refers to that file, is not written; the
    first frame's and the stream are unaffected."""
    first, _ = make_plate(faces_dir / TARGET, tmp_path / "plate.1001.exr", dlib_models)
    second = tmp_path / "plate.1002.exr"
    shutil.copyfile(first, second)
    _settled(first, second)
    outputs = tmp_path / "out"
    jobs = [FrameJob(1001, str(first), str(outputs / "out.1001.exr")),
            FrameJob(1002, str(second), str(outputs / "out.1002.exr"))]
    outcomes = _process(client, faces_dir, jobs)
    done = next(outcomes)
    assert done.status == "ok", done.message
    change(second)
    (failed,) = list(outcomes)
    assert failed.status == "failed" and failed.kind == "input"
    assert failed.message.startswith(f"{second} (frame 1002): changed after it was sent"), failed.message
    assert "not written" in failed.message and "\n" not in failed.message
    assert sorted(p.name for p in outputs.iterdir()) == ["out.1001.exr"]  # no result, no temporary file


def test_output_messages_carry_new_bytes_in_chunks_and_input_ranges_as_copies() -> None:
    """What the server sends for a result made of new bytes and input ranges, with and without copies; put back
    together from the input, it is the result."""
    source = bytes(range(256)) * 40_000  # a 10 MB input
    big_new = os.urandom(MAX_CHUNK_BYTES + 1000)
    output = EncodedFile((Piece(b"header"), Piece(memoryview(source)[100:5_000_100], 100), Piece(big_new),
                          Piece(b"x" * 10), Piece(b"y" * 20), Piece(memoryview(source)[7_000_000:], 7_000_000)))
    parse = chunk_deserializer(pb.ProcessFramesResponse)
    for copies in (True, False):
        rebuilt = bytearray()
        kinds = []
        for message in output_messages(3, output, copies):
            part = parse(serialize(message))
            if isinstance(part, pb.ProcessFramesResponse):
                copy = part.copy
                assert copy.frame_id == 3 and copy.offset == len(rebuilt)
                rebuilt += source[copy.input_offset:copy.input_offset + copy.length]
                kinds.append("copy")
            else:
                assert part.frame_id == 3 and part.offset == len(rebuilt) and len(part.data) <= MAX_CHUNK_BYTES
                rebuilt += part.data
                kinds.append("chunk")
        assert bytes(rebuilt) == output.join()
        # new bytes packed (the two small pieces after the large one share its last chunk), ranges referred to
        assert kinds == (["chunk", "copy", "chunk", "chunk", "copy"] if copies
                         else ["chunk"] * -(-output.size // MAX_CHUNK_BYTES))


class _HostileServer:
    """A bare gRPC server on loopback whose ProcessFrames reads the client's stream to its end, then answers with
    ``answer(headers)`` (the frame headers the client sent)."""

    def __init__(self, answer: Callable[[list[pb.FrameHeader]], list[pb.ProcessFramesResponse]]) -> None:
        def process(requests: Iterator[Any], _context: grpc.ServicerContext) -> Iterator[pb.ProcessFramesResponse]:
            headers = [r.header for r in requests
                       if isinstance(r, pb.ProcessFramesRequest) and r.WhichOneof("payload") == "header"]
            yield from answer(headers)

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        handler = grpc.method_handlers_generic_handler("facebridge.v1.FaceBridge", {
            "ProcessFrames": grpc.stream_stream_rpc_method_handler(
                process, request_deserializer=chunk_deserializer(pb.ProcessFramesRequest),
                response_serializer=serialize),
        })
        self.server.add_generic_rpc_handlers((handler,))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()


def _result(frame_id: int, total: int) -> pb.ProcessFramesResponse:
    return pb.ProcessFramesResponse(result=pb.FrameResult(frame_id=frame_id, frame_number=1, total_bytes=total))


def _copy(frame_id: int, offset: int, input_offset: int, length: int) -> pb.ProcessFramesResponse:
    return pb.ProcessFramesResponse(copy=pb.FrameCopy(frame_id=frame_id, offset=offset, input_offset=input_offset,
                                                      length=length))


@pytest.mark.parametrize(("why", "answer"), [
    ("not offered", lambda h, size: [_result(0, size), _copy(0, 0, 0, size)]),
    ("beyond the input", lambda h, size: [_result(0, size), _copy(0, 0, 1, size)]),
    ("beyond the result", lambda h, size: [_result(0, 10), _copy(0, 0, 0, 11)]),
    ("out of order", lambda h, size: [_result(0, size), _copy(0, 5, 0, size - 5)]),
    ("another frame", lambda h, size: [_result(0, size), _copy(1, 0, 0, size)]),
])
def test_a_server_cannot_make_the_client_copy_what_it_did_not_offer(
    tmp_path: Path, why: str, answer: Callable[[list[pb.FrameHeader], int], list[pb.ProcessFramesResponse]],
) -> None:
    plate = tmp_path / "plate.exr"
    plate.write_bytes(os.urandom(100_000))
    _settled(plate)
    offered = why != "not offered"
    hostile = _HostileServer(lambda headers: answer(headers, 100_000))
    try:
        with FaceBridgeClient(f"127.0.0.1:{hostile.port}", token="") as client:
            outcomes = client.process("session", [FrameJob(1, str(plate), str(tmp_path / "out.exr"))],
                                      input_copies=offered)
            if why == "another frame":
                with pytest.raises(ClientError, match="out of order"):
                    list(outcomes)
            else:
                with pytest.raises(ClientError, match="does not add up"):
                    list(outcomes)
    finally:
        hostile.server.stop(None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plate.exr"]
