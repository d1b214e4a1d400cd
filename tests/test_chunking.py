import os

import pytest

from facebridge_wire.chunking import MAX_CHUNK_BYTES, ChunkError, Reassembler, split_chunks


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
