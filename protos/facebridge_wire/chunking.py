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
    """Collects the chunks of one frame into a buffer that grows as they arrive.

    Nothing is allocated for what a header merely announces: memory follows the bytes actually received,
    so a 20-byte header announcing gigabytes costs nothing.

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
        self._buffer = bytearray()

    @property
    def complete(self) -> bool:
        return len(self._buffer) == self.total_bytes

    @property
    def received(self) -> int:
        return len(self._buffer)

    def add(self, offset: int, data: bytes) -> None:
        """Append one chunk; chunks must arrive in order, be at most ``max_chunk`` long and must not overrun
        the announced size."""
        if len(data) > self._max_chunk:
            raise ChunkError(f"chunk of {len(data)} bytes exceeds the limit of {self._max_chunk} bytes")
        if offset != len(self._buffer):
            raise ChunkError(f"chunk at offset {offset}, expected {len(self._buffer)}")
        end = offset + len(data)
        if end > self.total_bytes:
            raise ChunkError(f"chunk ends at {end}, beyond the announced {self.total_bytes} bytes")
        self._buffer += data

    def result(self) -> bytearray:
        """The assembled frame (the buffer itself, not a copy: the assembler is done with it)."""
        if not self.complete:
            raise ChunkError(f"frame incomplete: {len(self._buffer)} of {self.total_bytes} bytes")
        return self._buffer
