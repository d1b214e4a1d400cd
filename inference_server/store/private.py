"""Private files of the cache dir: folders 0700, files 0600, and one-line errors for an unusable cache dir.

Folders this server creates are 0700. Its own named files and subfolders (the shot database, the payload
folders, the digest memo, the audit log) are made 0600 / 0700 when they belong to this user; a folder the
operator named that already exists (``--cache-dir /srv/x``) keeps its mode, since it may hold other things.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


class StoreError(OSError):
    """The cache dir cannot be used (read-only, not a database, ...); the message is one line."""


def private_dir(path: Path | str, own: bool = True) -> Path:
    """Make ``path`` (and missing parents) with mode 0700; when ``own``, also tighten an existing folder of
    this user to 0700. StoreError (one line) when it cannot be made."""
    path = Path(path)
    missing = []
    probe = path
    try:
        while not probe.exists() and probe != probe.parent:
            missing.append(probe)
            probe = probe.parent
        if not missing and not path.is_dir():
            raise StoreError(f"cannot use {path}: not a folder")
        for folder in reversed(missing):
            folder.mkdir(mode=DIR_MODE, exist_ok=True)
            os.chmod(folder, DIR_MODE)  # (mkdir's mode is masked by the umask)
        if own:
            tighten(path, DIR_MODE)
    except OSError as exc:
        raise StoreError(f"cannot use {path}: {exc.strerror or exc}") from None
    return path


def tighten(path: Path | str, mode: int) -> None:
    """chmod ``path`` to ``mode`` when it exists, is not a symlink and belongs to this user."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode) or info.st_uid != os.geteuid() or stat.S_IMODE(info.st_mode) == mode:
        return
    os.chmod(path, mode)


def create_private_file(path: Path | str) -> None:
    """Create ``path`` empty with mode 0600 unless it exists (then tighten it when it is this user's)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
    except FileExistsError:
        tighten(path, FILE_MODE)
        return
    os.close(fd)


def check_writable(folder: Path | str) -> None:
    """StoreError (one line) unless a file can be created in ``folder`` (a real try: root ignores modes)."""
    probe = Path(folder) / f".facebridge-write-test-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise StoreError(f"cache dir {folder} is not writable ({exc.strerror or exc}); pass a writable "
                         "--cache-dir") from None
