import os
from pathlib import Path

import pytest
from facebridge_wire.chunking import (MAX_CHUNK_BYTES, ChunkCursor, ChunkError, ChunkPieces, Reassembler, encoded_chunk,
                                      serialize, split_chunks)
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
