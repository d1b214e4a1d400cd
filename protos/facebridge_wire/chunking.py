"""Splitting encoded frames into wire chunks and putting them back together.

Both directions of ``ProcessFrames`` carry a frame as a header announcing ``total_bytes`` followed by
``FrameChunk`` messages whose ``data`` is at most ``MAX_CHUNK_BYTES`` long, in offset order.
"""

from __future__ import annotations

from collections.abc import Iterator

MAX_CHUNK_BYTES = 4 * 1024 * 1024 - 64 * 1024
"""Chunk payload size: under gRPC's 4 MiB default receive limit with room for the message framing."""


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


class Reassembler:
    """Collects the chunks of one frame into a preallocated buffer.

    Args:
        total_bytes: the size announced by the frame's header.
        limit: the largest frame accepted; larger announcements raise ``ChunkError`` at once.
    """

    def __init__(self, total_bytes: int, limit: int) -> None:
        if total_bytes > limit:
            raise ChunkError(f"frame of {total_bytes} bytes exceeds the limit of {limit} bytes")
        self._buffer = bytearray(total_bytes)
        self._filled = 0

    @property
    def complete(self) -> bool:
        return self._filled == len(self._buffer)

    def add(self, offset: int, data: bytes) -> None:
        """Append one chunk; chunks must arrive in order and must not overrun the announced size."""
        if offset != self._filled:
            raise ChunkError(f"chunk at offset {offset}, expected {self._filled}")
        end = offset + len(data)
        if end > len(self._buffer):
            raise ChunkError(f"chunk ends at {end}, beyond the announced {len(self._buffer)} bytes")
        self._buffer[offset:end] = data
        self._filled = end

    def result(self) -> bytearray:
        """The assembled frame (the buffer itself, not a copy: the assembler is done with it)."""
        if not self.complete:
            raise ChunkError(f"frame incomplete: {self._filled} of {len(self._buffer)} bytes")
        return self._buffer
