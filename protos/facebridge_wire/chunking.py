"""Splitting encoded frames into wire chunks and putting them back together.

Both directions of ``ProcessFrames`` carry a frame as a header announcing ``total_bytes`` followed by
``FrameChunk`` messages whose ``data`` is at most ``MAX_CHUNK_BYTES`` long, in offset order.
"""

from __future__ import annotations

from collections.abc import Iterator

from google.protobuf.message import Message

from .v1 import facebridge_pb2 as pb

MAX_CHUNK_BYTES = 4 * 1024 * 1024 - 64 * 1024
"""Chunk payload size: under gRPC's 4 MiB default receive limit with room for the message framing."""


_LEN = 2  # protobuf wire type of length-delimited fields (bytes, messages)
_VARINT = 0
_CHUNK_FIELDS = {name: field.number for name, field in pb.FrameChunk.DESCRIPTOR.fields_by_name.items()}


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _tag(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def encoded_chunk(container: type[Message], frame_id: int, offset: int, data: bytes | memoryview) -> bytes:
    """The serialized ``container`` message (``ProcessFramesRequest`` or ``ProcessFramesResponse``) whose
    ``chunk`` is ``FrameChunk(frame_id, offset, data)``: the bytes ``SerializeToString`` gives, built with
    one copy of ``data`` (protobuf would copy a chunk three times, each into fresh memory).

    Fields follow protobuf's canonical encoding: in field-number order, zero values left out (proto3).
    """
    if frame_id < 0 or offset < 0:
        raise ValueError(f"frame_id and offset are unsigned, got {frame_id} and {offset}")
    size = len(data) if isinstance(data, bytes) else memoryview(data).nbytes
    inner = b"".join((
        _tag(_CHUNK_FIELDS["frame_id"], _VARINT) + _varint(frame_id) if frame_id else b"",
        _tag(_CHUNK_FIELDS["offset"], _VARINT) + _varint(offset) if offset else b"",
        _tag(_CHUNK_FIELDS["data"], _LEN) + _varint(size) if size else b"",
    ))
    chunk_field = container.DESCRIPTOR.fields_by_name["chunk"].number
    return b"".join((_tag(chunk_field, _LEN), _varint(len(inner) + size), inner, data))


def serialize(message: Message | bytes) -> bytes:
    """gRPC serializer for a stream of protobuf messages some of which are already encoded (``encoded_chunk``)."""
    return message if isinstance(message, bytes) else message.SerializeToString()


class ChunkError(ValueError):
    """A chunk sequence that does not add up to the announced frame."""


def split_chunks(data: bytes | memoryview, chunk_bytes: int = MAX_CHUNK_BYTES) -> Iterator[tuple[int, memoryview]]:
    """Yield ``(offset, piece)`` covering ``data`` in order; pieces are at most ``chunk_bytes`` long.

    An empty ``data`` yields nothing: the header's ``total_bytes`` of 0 says it all.
    """
    if chunk_bytes <= 0:
        raise ValueError(f"chunk_bytes must be positive, got {chunk_bytes}")
    view = memoryview(data).cast("B")
    for offset in range(0, len(view), chunk_bytes):
        yield offset, view[offset:offset + chunk_bytes]


class ChunkCursor:
    """Checks the chunks of one frame as they arrive, keeping none of them (see :class:`Reassembler`).

    Args:
        total_bytes: the size announced by the frame's header.
        limit: the largest frame accepted; larger announcements raise ``ChunkError`` at once.
        max_chunk: the largest chunk payload accepted (``MAX_CHUNK_BYTES``, the limit servers advertise).
    """

    def __init__(self, total_bytes: int, limit: int, max_chunk: int = MAX_CHUNK_BYTES) -> None:
        if total_bytes < 0:
            raise ChunkError(f"frame of {total_bytes} bytes announced")
        if total_bytes > limit:
            raise ChunkError(f"frame of {total_bytes} bytes exceeds the limit of {limit} bytes")
        self.total_bytes = total_bytes
        self._max_chunk = max_chunk
        self._received = 0

    @property
    def complete(self) -> bool:
        return self._received == self.total_bytes

    @property
    def received(self) -> int:
        return self._received

    def advance(self, offset: int, size: int) -> None:
        """Account for one chunk of ``size`` bytes at ``offset``: chunks must arrive in order, be at most
        ``max_chunk`` long and must not overrun the announced size (``ChunkError`` otherwise)."""
        if size > self._max_chunk:
            raise ChunkError(f"chunk of {size} bytes exceeds the limit of {self._max_chunk} bytes")
        if offset != self._received:
            raise ChunkError(f"chunk at offset {offset}, expected {self._received}")
        end = offset + size
        if end > self.total_bytes:
            raise ChunkError(f"chunk ends at {end}, beyond the announced {self.total_bytes} bytes")
        self._received = end

    def check_complete(self) -> None:
        if not self.complete:
            raise ChunkError(f"frame incomplete: {self._received} of {self.total_bytes} bytes")


class ChunkPieces(ChunkCursor):
    """Collects the chunks of one frame as the pieces they came in, neither copied nor joined (for a reader
    that takes them in order: hashing, writing a file). Memory follows the bytes received, as for
    :class:`Reassembler`; arguments as :class:`ChunkCursor`."""

    def __init__(self, total_bytes: int, limit: int, max_chunk: int = MAX_CHUNK_BYTES) -> None:
        super().__init__(total_bytes, limit, max_chunk)
        self._pieces: list[bytes] = []

    def add(self, offset: int, data: bytes) -> None:
        """Keep one chunk (checked as :meth:`ChunkCursor.advance`); ``bytes`` are immutable, so kept as given."""
        self.advance(offset, len(data))
        if data:
            self._pieces.append(bytes(data) if not isinstance(data, bytes) else data)

    def result(self) -> tuple[bytes, ...]:
        """The frame's pieces, in order."""
        self.check_complete()
        return tuple(self._pieces)


class Reassembler(ChunkCursor):
    """Collects the chunks of one frame into a buffer that grows as they arrive.

    Nothing is allocated for what a header merely announces: memory follows the bytes actually received,
    so a 20-byte header announcing gigabytes costs nothing. Arguments as :class:`ChunkCursor`.
    """

    def __init__(self, total_bytes: int, limit: int, max_chunk: int = MAX_CHUNK_BYTES) -> None:
        super().__init__(total_bytes, limit, max_chunk)
        self._buffer = bytearray()

    def add(self, offset: int, data: bytes) -> None:
        """Append one chunk (checked as :meth:`ChunkCursor.advance`)."""
        self.advance(offset, len(data))
        self._buffer += data

    def result(self) -> bytearray:
        """The assembled frame (the buffer itself, not a copy: the assembler is done with it)."""
        self.check_complete()
        return self._buffer
