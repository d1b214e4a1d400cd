"""Splitting encoded frames into wire chunks and putting them back together.

Both directions of ``ProcessFrames`` carry a frame as a header announcing ``total_bytes`` followed by
``FrameChunk`` messages whose ``data`` is at most ``MAX_CHUNK_BYTES`` long, in offset order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

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


def chunk_prefix(container: type[Message], frame_id: int, offset: int, size: int) -> bytes:
    """What :func:`encoded_chunk` puts before a chunk's ``size`` data bytes: the serialized ``container``
    (``ProcessFramesRequest`` or ``ProcessFramesResponse``) whose ``chunk`` is ``FrameChunk(frame_id, offset,
    data)`` is this prefix followed by ``data`` (at most ``CHUNK_PREFIX_BYTES`` long).

    Fields follow protobuf's canonical encoding: in field-number order, zero values left out (proto3).
    """
    if frame_id < 0 or offset < 0:
        raise ValueError(f"frame_id and offset are unsigned, got {frame_id} and {offset}")
    inner = b"".join((
        _tag(_CHUNK_FIELDS["frame_id"], _VARINT) + _varint(frame_id) if frame_id else b"",
        _tag(_CHUNK_FIELDS["offset"], _VARINT) + _varint(offset) if offset else b"",
        _tag(_CHUNK_FIELDS["data"], _LEN) + _varint(size) if size else b"",
    ))
    chunk_field = container.DESCRIPTOR.fields_by_name["chunk"].number
    return b"".join((_tag(chunk_field, _LEN), _varint(len(inner) + size), inner))


CHUNK_PREFIX_BYTES = 64
"""Room enough for any :func:`chunk_prefix` (three tagged 64-bit varints and a length: under 50 bytes)."""


def encoded_chunk(container: type[Message], frame_id: int, offset: int, data: bytes | memoryview) -> bytes:
    """The serialized ``container`` message (``ProcessFramesRequest`` or ``ProcessFramesResponse``) whose
    ``chunk`` is ``FrameChunk(frame_id, offset, data)``: the bytes ``SerializeToString`` gives, built with
    one copy of ``data`` (protobuf would copy a chunk three times, each into fresh memory)."""
    size = len(data) if isinstance(data, bytes) else memoryview(data).nbytes
    return b"".join((chunk_prefix(container, frame_id, offset, size), data))


def packed_chunks(container: type[Message], frame_id: int, offset: int,
                  pieces: Iterable[bytes | memoryview], chunk_bytes: int = MAX_CHUNK_BYTES) -> Iterator[bytes]:
    """Serialized ``container`` chunk messages (as :func:`encoded_chunk`) carrying ``pieces`` one after another
    from ``offset`` on: small pieces packed into one chunk, large ones split, every chunk but the last
    ``chunk_bytes`` long. Each byte is copied once (into its message)."""
    if chunk_bytes <= 0:
        raise ValueError(f"chunk_bytes must be positive, got {chunk_bytes}")
    batch: list[memoryview] = []
    size = 0
    for piece in pieces:
        view = memoryview(piece).cast("B")
        while view.nbytes:
            take = view[:chunk_bytes - size]
            batch.append(take)
            size += take.nbytes
            view = view[take.nbytes:]
            if size == chunk_bytes:
                yield b"".join([chunk_prefix(container, frame_id, offset, size), *batch])
                offset, batch, size = offset + size, [], 0
    if size:
        yield b"".join([chunk_prefix(container, frame_id, offset, size), *batch])


M = TypeVar("M", bound=Message)


@dataclass(frozen=True)
class ChunkView:
    """A ``FrameChunk`` read straight from its serialized container: ``data`` is a read-only view into the
    received message's bytes (nothing copied; it keeps them alive)."""

    frame_id: int
    offset: int
    data: memoryview


def _read_varint(buffer: bytes, position: int) -> tuple[int, int]:
    """The varint at ``position`` and the position after it; ValueError when it runs off the end or past 64
    bits (the caller then leaves the message to protobuf)."""
    value = shift = 0
    while True:
        if position >= len(buffer) or shift > 63:
            raise ValueError("bad varint")
        byte = buffer[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if value >> 64:
                raise ValueError("varint beyond 64 bits")
            return value, position
        shift += 7


def _chunk_view(buffer: bytes, chunk_field: int) -> ChunkView | None:
    """The chunk of a serialized container that holds exactly one ``chunk`` field (the way ``encoded_chunk``
    and protobuf write it) whose fields are ``FrameChunk``'s, each at its wire type; None for anything else."""
    try:
        tag, position = _read_varint(buffer, 0)
        if tag != chunk_field << 3 | _LEN:
            return None
        length, position = _read_varint(buffer, position)
        if position + length != len(buffer):
            return None
        frame_id = offset = 0
        data = memoryview(b"")
        while position < len(buffer):
            tag, position = _read_varint(buffer, position)
            number, wire_type = tag >> 3, tag & 7
            if number in (_CHUNK_FIELDS["frame_id"], _CHUNK_FIELDS["offset"]) and wire_type == _VARINT:
                value, position = _read_varint(buffer, position)
                if number == _CHUNK_FIELDS["frame_id"]:
                    frame_id = value
                else:
                    offset = value
            elif number == _CHUNK_FIELDS["data"] and wire_type == _LEN:
                size, position = _read_varint(buffer, position)
                if position + size > len(buffer):
                    return None
                data = memoryview(buffer)[position:position + size]
                position += size
            else:
                return None
    except ValueError:
        return None
    return ChunkView(frame_id, offset, data)


def chunk_deserializer(container: type[M]) -> Callable[[bytes], M | ChunkView]:
    """gRPC deserializer for a ``ProcessFrames`` direction (``container``: ``ProcessFramesRequest`` or
    ``ProcessFramesResponse``): a chunk message comes out as a :class:`ChunkView` over the received bytes
    (protobuf would copy its data twice, into fresh memory each time), any other message as ``container``.
    A chunk the fast reader does not take (unknown fields, another layout) goes through protobuf and comes
    out as a ``ChunkView`` of its parsed data all the same."""
    chunk_field = container.DESCRIPTOR.fields_by_name["chunk"].number

    def deserialize(buffer: bytes) -> M | ChunkView:
        view = _chunk_view(buffer, chunk_field)
        if view is not None:
            return view
        message = container.FromString(buffer)
        if message.WhichOneof("payload") == "chunk":
            chunk = message.chunk  # type: ignore[attr-defined]  # (both containers have it)
            return ChunkView(chunk.frame_id, chunk.offset, memoryview(chunk.data))
        return message

    return deserialize


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
        self.advance_range(offset, size)

    def advance_range(self, offset: int, size: int) -> None:
        """Account for ``size`` bytes at ``offset`` that did not come as one chunk (a ``FrameCopy``): in order, within
        the announced size, of any length (``ChunkError`` otherwise)."""
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
        self._pieces: list[bytes | memoryview] = []

    def add(self, offset: int, data: bytes | memoryview) -> None:
        """Keep one chunk (checked as :meth:`ChunkCursor.advance`): ``bytes`` and read-only views of bytes
        (:class:`ChunkView`) cannot change, so they are kept as given; anything else is copied."""
        piece = data if isinstance(data, bytes) or (isinstance(data, memoryview) and isinstance(data.obj, bytes)) \
            else bytes(data)
        self.advance(offset, piece.nbytes if isinstance(piece, memoryview) else len(piece))
        if piece:
            self._pieces.append(piece)

    def result(self) -> tuple[bytes | memoryview, ...]:
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
