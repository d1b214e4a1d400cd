"""Reading the frames a client streams, chunk by chunk while they are sent, into one buffer kept for the next.

A frame is read as its chunks leave (the disk read of one chunk overlaps the sending of the one before),
not whole before the first chunk is sent. A file that changes while it is read is caught before its last
chunk leaves, so the server never receives a complete frame mixing two versions of the file: the frame is
refused (:class:`InputChanged`) instead. A write changes the file's size or its change time (which no
writer can set back); a write within the same clock tick as the one before could keep the change time,
so a file changed shortly before it was opened (``FRESH_S``) is also hashed as it is read and read again,
hashed, before its last chunk leaves.

A fresh buffer of a chunk's size costs page faults on every use, so the buffer of the last frame is
reused when it is free.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

FRESH_S = 2.0
"""A file whose change time is this recent (or in the future: another machine's clock) when it is opened is
checked by its content too (timestamps have a coarse tick, and a network share's clock may differ)."""

_VERIFY_BYTES = 1 << 20


class InputChanged(OSError):
    """An input file that changed (size, times, inode) while it was being read and sent; the message says
    how, without naming the file (the caller names it and the frame)."""


def _identity(stat: os.stat_result) -> tuple[int, ...]:
    """What changes when a file is written, truncated or replaced (ctime cannot be set back by a writer)."""
    return stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino, stat.st_dev


class BufferPool:
    """One buffer kept for the next reader; safe to share between threads (a buffer in use is never lent
    twice: a second reader meanwhile gets its own, and only one is kept).

    Args:
        size: the buffers' size in bytes.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._free: bytearray | None = None

    @contextmanager
    def lend(self) -> Iterator[bytearray]:
        """A buffer of ``size`` bytes, the caller's until the ``with`` block ends."""
        with self._lock:
            buffer, self._free = self._free, None
        if buffer is None:
            buffer = bytearray(self.size)
        try:
            yield buffer
        finally:
            with self._lock:
                if self._free is None:
                    self._free = buffer


class InputFile:
    """An input file opened for streaming: ``size`` as it was when opened, read chunk by chunk by
    :meth:`chunks`. OSError when it cannot be opened; a context manager that closes it.

    Args:
        path: the file.
        fresh_s: a file changed less than this long before it is opened is also checked by content.
    """

    def __init__(self, path: str | os.PathLike[str], fresh_s: float = FRESH_S) -> None:
        self.path = os.fspath(path)
        opened_at = time.time_ns()
        self._handle = open(self.path, "rb", buffering=0)  # noqa: SIM115 - closed by close()
        try:
            stat = os.fstat(self._handle.fileno())
        except OSError:
            self._handle.close()
            raise
        self.identity = _identity(stat)
        """What the file was when opened (size, times, inode, device): :class:`InputCopy` checks it again."""
        self.size = self.identity[0]
        self.fresh = stat.st_ctime_ns > opened_at - int(fresh_s * 1e9)

    def __enter__(self) -> InputFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._handle.close()

    @staticmethod
    def _changed(why: str) -> InputChanged:
        return InputChanged(f"changed while it was being sent ({why})")

    def _check_unchanged(self, digest: hashlib._Hash | None) -> None:
        """InputChanged when the file is not as it was opened: its size, times, inode, and with ``digest``
        (of the bytes read) its content, read again."""
        now = _identity(os.fstat(self._handle.fileno()))
        if now[0] != self.size:
            raise self._changed(f"{self.size} bytes when opened, {now[0]} now")
        if now != self.identity:
            raise self._changed("written to while it was read")
        if digest is not None:
            again = hashlib.sha256()
            chunk = bytearray(_VERIFY_BYTES)
            view = memoryview(chunk)
            offset = 0
            while True:
                count = os.preadv(self._handle.fileno(), [view], offset)
                if not count:
                    break
                again.update(view[:count])
                offset += count
            view.release()
            if offset != self.size or again.digest() != digest.digest():
                raise self._changed("its content differs from what was read")

    def chunks(self, buffer: bytearray, headroom: int, chunk_bytes: int,
               prefix: Callable[[int, int], bytes]) -> Iterator[bytes]:
        """The file in order, each chunk as new bytes ``prefix(offset, size) + data``, read into ``buffer``
        (``headroom + chunk_bytes`` long at least; each prefix at most ``headroom`` long) just before it is
        handed out. Before the last chunk is handed out the file is checked to be as it was when opened
        (InputChanged otherwise: the caller must not let a frame it has begun to send be completed); a
        ``fresh`` file by its content too (hashed as read, then read again).
        """
        if len(buffer) < headroom + chunk_bytes:
            raise ValueError(f"a buffer of {len(buffer)} bytes cannot hold chunks of {chunk_bytes} bytes "
                             f"after {headroom} bytes of headroom")
        view = memoryview(buffer)
        digest = hashlib.sha256() if self.fresh else None
        try:
            for offset in range(0, self.size, chunk_bytes):
                size = min(chunk_bytes, self.size - offset)
                head = prefix(offset, size)
                if len(head) > headroom:
                    raise ValueError(f"a chunk prefix of {len(head)} bytes exceeds the {headroom} bytes of headroom")
                start, filled = headroom - len(head), 0
                view[start:headroom] = head
                while filled < size:
                    count = self._handle.readinto(view[headroom + filled:headroom + size])
                    if not count:
                        raise self._changed(f"{self.size} bytes when opened, it ended at {offset + filled}")
                    filled += count
                if digest is not None:
                    digest.update(view[headroom:headroom + size])
                if offset + size == self.size:
                    self._check_unchanged(digest)
                yield bytes(view[start:headroom + size])
        finally:
            view.release()


class InputCopy:
    """An input file opened again, after it was sent, to copy ranges of it into its frame's result (the parts of
    the result a server sends as ``FrameCopy``). It must be the file that was sent, as it was: the identity
    :class:`InputFile` saw when it opened it (size, times, inode, device), checked when opened here and again by
    :meth:`check_unchanged` once every range is read (InputChanged otherwise). Only a file that was not
    ``fresh`` when sent may be copied from: a recent change could share its change time with a later one.

    Args:
        path: the file.
        identity: ``InputFile.identity`` when it was sent.
    """

    def __init__(self, path: str, identity: tuple[int, ...]) -> None:
        self.path = path
        self._identity = identity
        self._fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        try:
            self.check_unchanged()
        except OSError:
            os.close(self._fd)
            raise

    @property
    def size(self) -> int:
        return self._identity[0]

    def check_unchanged(self) -> None:
        """InputChanged when the file is no longer as it was sent."""
        if _identity(os.fstat(self._fd)) != self._identity:
            raise InputChanged("changed after it was sent")

    def read(self, offset: int, length: int, block: int) -> Iterator[bytes]:
        """Bytes ``[offset, offset + length)`` of the file, in order, at most ``block`` at a time (ValueError for a
        range beyond the file's size when sent; InputChanged when the file ends early)."""
        if offset < 0 or length < 0 or offset + length > self.size:
            raise ValueError(f"bytes {offset}..{offset + length} of a {self.size}-byte input")
        end = offset + length
        while offset < end:
            data = os.pread(self._fd, min(block, end - offset), offset)
            if not data:
                raise InputChanged(f"changed after it was sent (it ended at {offset})")
            offset += len(data)
            yield data

    def close(self) -> None:
        os.close(self._fd)
