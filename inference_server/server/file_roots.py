"""The path transport's file policy: which files a client may make the server read and write.

A server started with ``serve --allow-root DIR`` (repeatable) reads and writes client-named files only
inside those folders; with none, the path transport is not offered at all. The rules:

- A path is resolved (``os.path.realpath``: symlinks and ``..`` followed) and must lie inside a root;
  otherwise it is refused with one message that says nothing about whether the file exists.
- An input must be a regular file (never a FIFO, device, socket or folder), no larger than the frame
  limit; it is opened with ``O_NOFOLLOW | O_NONBLOCK`` (a FIFO can never block a worker), checked again
  on the open descriptor (``fstat``, and where ``/proc`` tells, where the descriptor really points) and
  read from that descriptor only, so a file swapped between the check and the read is never read.
- An output's folder must exist inside a root; the output itself is absent or a regular file the request
  named (never a symlink, a folder or the input). It is written under a temporary name in that folder,
  opened relative to the checked folder's descriptor, and renamed over the name: a failure leaves no
  partial file, and a symlink or hard link at the name is replaced, never written through.

Errors are :class:`~inference_server.plates.errors.PlateError` of kind ``path`` with a one-line message
(the engine adds file and frame).
"""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..plates.errors import PlateError
from .errors import FaceBridgeError

_OUTSIDE = "outside the server's allowed roots (serve --allow-root)"
_READ_BLOCK = 1 << 20


class RootsError(FaceBridgeError):
    """A configured root cannot be used (one line)."""


@dataclass(frozen=True)
class InputFile:
    """A checked input: its resolved path and the ``stat`` of the file that was checked."""

    path: str
    size: int
    mtime_ns: int
    inode: int


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _fd_target(fd: int) -> str | None:
    """Where an open descriptor really points (Linux ``/proc``), or None when the system cannot say."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


class FileRoots:
    """The folders the path transport may touch.

    Args:
        roots: the folders (``serve --allow-root``); each must exist and is resolved once, here.

    Raises:
        RootsError: a root that is not an existing folder.
    """

    def __init__(self, roots: Iterable[Path | str] = ()) -> None:
        resolved: list[str] = []
        for root in roots:
            real = os.path.realpath(os.fspath(root))
            if not os.path.isdir(real):
                raise RootsError(f"--allow-root {root}: not an existing folder")
            if real not in resolved:
                resolved.append(real)
        self.roots: tuple[str, ...] = tuple(resolved)

    @property
    def offered(self) -> bool:
        """Whether the path transport is offered at all (some root was named)."""
        return bool(self.roots)

    def _resolve(self, path: str) -> str:
        if not self.roots:
            raise PlateError("path", "this server does not offer the path transport (no --allow-root)")
        if not path or "\0" in path:
            raise PlateError("path", "empty or invalid path")
        real = os.path.realpath(path)
        if not any(_inside(real, root) for root in self.roots):
            raise PlateError("path", _OUTSIDE)
        return real

    def _check_target(self, fd: int) -> None:
        target = _fd_target(fd)
        if target is not None and not any(_inside(target, root) for root in self.roots):
            raise PlateError("path", _OUTSIDE)

    # -- inputs -----------------------------------------------------------------------------------
    def check_input(self, path: str, max_bytes: int) -> InputFile:
        """Resolve and check an input without opening it (PlateError ``path`` when refused)."""
        real = self._resolve(path)
        try:
            info = os.stat(real)
        except OSError as exc:
            raise PlateError("path", f"cannot read input ({exc.strerror or exc})") from None
        self._check_regular(info, max_bytes)
        return InputFile(real, info.st_size, info.st_mtime_ns, info.st_ino)

    @staticmethod
    def _check_regular(info: os.stat_result, max_bytes: int) -> None:
        if not stat.S_ISREG(info.st_mode):
            raise PlateError("path", "input is not a regular file")
        if info.st_size > max_bytes:
            raise PlateError("path", f"input is {info.st_size} bytes, over the server's frame limit of {max_bytes}")

    def read_input(self, path: str, max_bytes: int) -> tuple[bytes, str]:
        """The bytes of an input file and its resolved path, read from one checked descriptor."""
        checked = self.check_input(path, max_bytes)
        try:
            fd = os.open(checked.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise PlateError("path", f"cannot read input ({exc.strerror or exc})") from None
        try:
            self._check_regular(os.fstat(fd), max_bytes)
            self._check_target(fd)
            os.set_blocking(fd, True)
            chunks: list[bytes] = []
            total = 0
            while True:
                block = os.read(fd, _READ_BLOCK)
                if not block:
                    break
                total += len(block)
                if total > max_bytes:  # grew while being read
                    raise PlateError("path", f"input is over the server's frame limit of {max_bytes} bytes")
                chunks.append(block)
        except OSError as exc:
            raise PlateError("path", f"cannot read input ({exc.strerror or exc})") from None
        finally:
            os.close(fd)
        return b"".join(chunks), checked.path

    # -- outputs ----------------------------------------------------------------------------------
    def write_output(self, path: str, data: bytes, input_path: str = "") -> str:
        """Write ``data`` as the file ``path`` (atomically; see the module notes); returns the resolved path."""
        if not self.roots:
            raise PlateError("path", "this server does not offer the path transport (no --allow-root)")
        if not path or "\0" in path:
            raise PlateError("path", "empty or invalid output path")
        name = os.path.basename(path)
        if name in ("", ".", ".."):
            raise PlateError("path", "the output path names a folder, not a file")
        folder = self._resolve(os.path.dirname(path) or ".")
        flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        try:
            dir_fd = os.open(folder, flags)
        except OSError as exc:
            raise PlateError("path", f"output folder cannot be used ({exc.strerror or exc})") from None
        try:
            self._check_target(dir_fd)
            self._check_existing(dir_fd, name, input_path)
            tmp = f".{name}.{uuid.uuid4().hex[:12]}.tmp"
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0),
                             0o666, dir_fd=dir_fd)
            except OSError as exc:
                raise PlateError("path", f"cannot write output ({exc.strerror or exc})") from None
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
                os.close(fd)
                fd = -1
                os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except OSError as exc:
                if fd >= 0:
                    os.close(fd)
                try:
                    os.unlink(tmp, dir_fd=dir_fd)
                except OSError:
                    pass
                raise PlateError("path", f"cannot write output ({exc.strerror or exc})") from None
        finally:
            os.close(dir_fd)
        return os.path.join(folder, name)

    def _check_existing(self, dir_fd: int, name: str, input_path: str) -> None:
        try:
            info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise PlateError("path", f"output cannot be used ({exc.strerror or exc})") from None
        if stat.S_ISLNK(info.st_mode):
            raise PlateError("path", "the output path is a symbolic link; name the file itself")
        if not stat.S_ISREG(info.st_mode):
            raise PlateError("path", "the output path exists and is not a regular file")
        if input_path:
            try:
                same = os.path.samestat(info, os.stat(input_path))
            except OSError:
                same = False
            if same:
                raise PlateError("path", "the output path is the input file")

