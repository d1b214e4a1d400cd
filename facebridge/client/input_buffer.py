"""Reading the frames a client streams into a buffer kept for the next frame.

A fresh buffer of a 4K EXR's size (tens of MB) costs several times the read itself in page faults; the
stream transport reads one frame after another, so the buffer of the last one is reused when it is free.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class InputBuffers:
    """Whole-file reads into reused buffers; safe to share between threads (a buffer in use is never lent
    twice: a second reader meanwhile gets its own, and only one is kept).

    Args:
        keep_bytes: the largest buffer kept for the next read (larger ones are freed after use).
    """

    def __init__(self, keep_bytes: int = 256 * 1024 * 1024) -> None:
        self._keep_bytes = keep_bytes
        self._lock = threading.Lock()
        self._free: bytearray | None = None

    @contextmanager
    def read(self, path: str | os.PathLike[str]) -> Iterator[memoryview]:
        """The whole content of ``path`` (as read now: a file that grew or shrank since it was opened is read
        to its current end), valid inside the ``with`` block only. OSError when it cannot be read."""
        with self._lock:
            buffer, self._free = self._free, None
        with open(path, "rb", buffering=0) as handle:
            size = os.fstat(handle.fileno()).st_size
            if buffer is None or len(buffer) < size:
                buffer = bytearray(size)
            view = memoryview(buffer)
            filled = 0
            while filled < size:
                count = handle.readinto(view[filled:size])
                if not count:  # shrank since the stat
                    break
                filled += count
            rest = handle.read() if filled == size else b""  # grew since the stat
        if rest:
            data = memoryview(bytes(view[:filled]) + rest)
            view.release()
        else:
            data = view[:filled]
        try:
            yield data
        finally:
            data.release()
            if not rest:
                view.release()
            if len(buffer) <= self._keep_bytes:
                with self._lock:
                    if self._free is None or len(self._free) < len(buffer):
                        self._free = buffer
