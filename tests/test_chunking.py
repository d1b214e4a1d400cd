import os
from pathlib import Path

import pytest
from facebridge_wire.chunking import (MAX_CHUNK_BYTES, ChunkCursor, ChunkError, ChunkPieces, ChunkView, Reassembler,
                                      chunk_deserializer, encoded_chunk, packed_chunks, serialize, split_chunks)
from facebridge_wire.v1 import facebridge_pb2 as pb
from google.protobuf.message import Message

from facebridge.files import AtomicFile


def test_chunks_fit_grpc_default_limit() -> None:
    assert MAX_CHUNK_BYTES < 4 * 1024 * 1024


@pytest.mark.parametrize("size", [0, 1, 999, 1000, 1001, 12345])
def test_split_and_reassemble_round_trip(size: int) -> None:
    data = os.urandom(size)
    pieces = list(split_chunks(data, 1000))
    assert all(len(p) <= 1000 for _, p in pieces)
    assembler = Reassembler(size, limit=10**6)
    for offset, piece in pieces:
        assembler.add(offset, bytes(piece))
    assert assembler.complete
    assert bytes(assembler.result()) == data


def test_out_of_order_chunk_is_rejected() -> None:
    assembler = Reassembler(10, limit=100)
    with pytest.raises(ChunkError, match="expected 0"):
        assembler.add(5, b"abcde")


def test_overrun_and_incomplete_are_rejected() -> None:
    assembler = Reassembler(4, limit=100)
    with pytest.raises(ChunkError, match="beyond"):
        assembler.add(0, b"abcdef")
    assembler.add(0, b"ab")
    with pytest.raises(ChunkError, match="incomplete"):
        assembler.result()


def test_oversized_frame_is_refused_up_front() -> None:
    with pytest.raises(ChunkError, match="exceeds the limit"):
        Reassembler(101, limit=100)


@pytest.mark.parametrize("frame_id, offset, size", [(0, 0, 0), (0, 0, 5), (3, 0, 127), (0, 300, 128),
                                                    (2**40, 2**35, 20000), (1, MAX_CHUNK_BYTES, MAX_CHUNK_BYTES)])
@pytest.mark.parametrize("container", [pb.ProcessFramesRequest, pb.ProcessFramesResponse])
def test_encoded_chunk_is_what_protobuf_serializes(container: type[Message], frame_id: int, offset: int, size: int) -> None:
    data = os.urandom(size)
    expected = container(chunk=pb.FrameChunk(frame_id=frame_id, offset=offset, data=data))
    encoded = encoded_chunk(container, frame_id, offset, memoryview(data))
    assert encoded == expected.SerializeToString()
    assert container.FromString(encoded) == expected
    assert serialize(encoded) is encoded and serialize(expected) == encoded


def test_chunk_cursor_checks_without_keeping() -> None:
    cursor = ChunkCursor(10, limit=100, max_chunk=4)
    with pytest.raises(ChunkError, match="exceeds the limit of 4"):
        cursor.advance(0, 5)
    with pytest.raises(ChunkError, match="expected 0"):
        cursor.advance(4, 4)
    cursor.advance(0, 4)
    cursor.advance(4, 4)
    with pytest.raises(ChunkError, match="beyond the announced 10"):
        cursor.advance(8, 4)
    with pytest.raises(ChunkError, match="incomplete: 8 of 10"):
        cursor.check_complete()
    cursor.advance(8, 2)
    assert cursor.complete and cursor.received == 10
    with pytest.raises(ChunkError, match="exceeds the limit"):
        ChunkCursor(101, limit=100)


@pytest.mark.parametrize("sizes", [[], [0], [5], [1000], [1001], [3, 4, 5], [999, 2, 2000, 1, 0, 7000], [10] * 250])
def test_packed_chunks_pack_small_pieces_and_split_large_ones(sizes: list[int]) -> None:
    pieces = [os.urandom(n) for n in sizes]
    joined = b"".join(pieces)
    messages = [pb.ProcessFramesResponse.FromString(m) for m in packed_chunks(pb.ProcessFramesResponse, 7, 300,
                                                                               [memoryview(p) for p in pieces], 1000)]
    assert [m.chunk.offset for m in messages] == list(range(300, 300 + len(joined), 1000))
    assert all(m.chunk.frame_id == 7 and len(m.chunk.data) <= 1000 for m in messages)
    assert all(len(m.chunk.data) == 1000 for m in messages[:-1])
    assert b"".join(m.chunk.data for m in messages) == joined
    # the same bytes as the chunks of the joined pieces, each as protobuf serializes it
    assert list(packed_chunks(pb.ProcessFramesResponse, 7, 300, pieces, 1000)) == \
        [encoded_chunk(pb.ProcessFramesResponse, 7, 300 + o, p) for o, p in split_chunks(joined, 1000)]


def test_ranges_are_checked_like_chunks_but_may_be_longer() -> None:
    cursor = ChunkCursor(10_000, limit=10_000, max_chunk=4)
    cursor.advance(0, 4)
    with pytest.raises(ChunkError, match="expected 4"):
        cursor.advance_range(5, 100)
    cursor.advance_range(4, 9_000)
    with pytest.raises(ChunkError, match="beyond the announced 10000"):
        cursor.advance_range(9_004, 997)
    cursor.advance_range(9_004, 996)
    assert cursor.complete


def test_atomic_file_appears_only_when_committed(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.exr"
    target.parent.mkdir()
    target.write_bytes(b"previous")
    writer = AtomicFile(target)
    writer.write(b"abc")
    writer.write(memoryview(b"defg")[1:])
    assert target.read_bytes() == b"previous"
    writer.commit()
    assert target.read_bytes() == b"abcefg"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.exr"]
    abandoned = AtomicFile(target)
    abandoned.write(b"half")
    abandoned.discard()
    assert target.read_bytes() == b"abcefg"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.exr"]
    with pytest.raises(ValueError):
        abandoned.write(b"more")


def test_chunk_pieces_keep_the_chunks_as_they_came() -> None:
    data = os.urandom(2500)
    pieces = ChunkPieces(len(data), limit=10**6, max_chunk=1000)
    received = [bytes(p) for _, p in split_chunks(data, 1000)]
    for (offset, _), piece in zip(split_chunks(data, 1000), received):
        pieces.add(offset, piece)
    kept = pieces.result()
    assert b"".join(kept) == data and all(a is b for a, b in zip(kept, received))  # not copied
    short = ChunkPieces(10, limit=100)
    short.add(0, b"abc")
    with pytest.raises(ChunkError, match="expected 3"):
        short.add(4, b"d")
    with pytest.raises(ChunkError, match="beyond"):
        short.add(3, b"x" * 8)
    with pytest.raises(ChunkError, match="incomplete: 3 of 10"):
        short.result()
    with pytest.raises(ChunkError, match="exceeds the limit"):
        ChunkPieces(101, limit=100)


@pytest.mark.parametrize("frame_id, offset, size", [(0, 0, 0), (0, 0, 5), (3, 0, 127), (0, 300, 128),
                                                    (2**40, 2**35, 20000), (2**64 - 1, 0, 3)])
@pytest.mark.parametrize("container", [pb.ProcessFramesRequest, pb.ProcessFramesResponse])
def test_chunk_deserializer_reads_chunks_as_views(container: type[Message], frame_id: int, offset: int,
                                                  size: int) -> None:
    """A chunk comes out as protobuf reads it, its data a view into the received bytes (nothing copied)."""
    data = os.urandom(size)
    encoded = container(chunk=pb.FrameChunk(frame_id=frame_id, offset=offset, data=data)).SerializeToString()
    assert encoded == encoded_chunk(container, frame_id, offset, data)
    view = chunk_deserializer(container)(encoded)
    assert isinstance(view, ChunkView)
    assert (view.frame_id, view.offset, bytes(view.data)) == (frame_id, offset, data)
    assert view.data.readonly and (size == 0 or view.data.obj is encoded)


def test_chunk_deserializer_leaves_other_messages_and_layouts_to_protobuf() -> None:
    read = chunk_deserializer(pb.ProcessFramesRequest)
    for message in (pb.ProcessFramesRequest(start=pb.StreamStart(session_id="s")),
                    pb.ProcessFramesRequest(header=pb.FrameHeader(frame_id=2, total_bytes=10, name="a.exr")),
                    pb.ProcessFramesRequest()):
        assert read(message.SerializeToString()) == message
    result = pb.ProcessFramesResponse(result=pb.FrameResult(frame_id=1, total_bytes=5))
    assert chunk_deserializer(pb.ProcessFramesResponse)(result.SerializeToString()) == result
    # fields out of the canonical order, repeated (the last wins), an unknown field, a chunk then a header:
    # each read as protobuf reads it
    plain = encoded_chunk(pb.ProcessFramesRequest, 4, 8, b"payload")
    inner = plain[2:]  # FrameChunk's fields (the container's tag and length are one byte each here)
    swapped = b"\x1a" + bytes([len(inner)]) + inner[2:4] + inner[:2] + inner[4:]
    repeated = b"\x1a" + bytes([len(inner) + 2]) + inner + b"\x08\x05"
    unknown = b"\x1a" + bytes([len(inner) + 2]) + inner + b"\x20\x01"
    followed = plain + pb.ProcessFramesRequest(header=pb.FrameHeader(frame_id=9)).SerializeToString()
    truncated = plain[:-1]
    for encoded in (swapped, repeated, unknown, followed):
        expected = pb.ProcessFramesRequest.FromString(encoded)
        got = read(encoded)
        if expected.WhichOneof("payload") == "chunk":
            assert isinstance(got, ChunkView)
            assert (got.frame_id, got.offset, bytes(got.data)) == (expected.chunk.frame_id, expected.chunk.offset,
                                                                   expected.chunk.data)
        else:
            assert got == expected
    assert read(repeated).frame_id == 5  # type: ignore[union-attr]
    with pytest.raises(Exception):  # noqa: B017 - protobuf's DecodeError, as before
        read(truncated)


def test_chunk_pieces_keep_views_of_bytes_and_copy_mutable_ones() -> None:
    received = os.urandom(3000)
    pieces = ChunkPieces(2000, limit=10**6)
    pieces.add(0, memoryview(received)[100:1100])
    mutable = bytearray(received[:1000])
    pieces.add(1000, memoryview(mutable))
    mutable[:] = b"\0" * 1000
    kept = pieces.result()
    assert isinstance(kept[0], memoryview) and kept[0].obj is received  # not copied
    assert b"".join(kept) == received[100:1100] + received[:1000]  # the mutable one was copied when received
