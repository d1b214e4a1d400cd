"""The server's scratch folder (``/dev/shm/facebridge-*`` where there is one): made with an owner file, and
the folders of servers that are gone (killed, crashed, failed to start) removed at the next start.

Each scratch folder holds ``owner`` = ``"<pid> <start time>"`` (the start time from ``/proc/<pid>/stat``
where there is one, so a reused pid is not mistaken for the owner). At start, a ``facebridge-*`` folder in
the same parent is removed when it belongs to this user, is not a symlink, and its owner is gone; a folder
without an owner file (an older version's) only when it is older than a day.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import tempfile
import time
from pathlib import Path

_LOG = logging.getLogger(__name__)
PREFIX = "facebridge-"
OWNER_FILE = "owner"
UNOWNED_AGE_S = 24 * 3600.0


def _start_time(pid: int) -> str:
    """The process's start time (clock ticks since boot) from ``/proc``, or "" where the system cannot say."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return text.rsplit(")", 1)[-1].split()[19] if ")" in text else ""


def _alive(pid: int, started: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: it exists
    return not started or not _start_time(pid) or _start_time(pid) == started


def remove_stale(parent: Path | None, now: float | None = None) -> list[Path]:
    """Remove the scratch folders of gone servers under ``parent`` (None: the system temp folder); returns them."""
    folder = Path(parent) if parent is not None else Path(tempfile.gettempdir())
    now = time.time() if now is None else now
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    for entry in entries:
        if not entry.name.startswith(PREFIX):
            continue
        try:
            info = entry.lstat()
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
                continue
            try:
                pid_text, _, started = (entry / OWNER_FILE).read_text().strip().partition(" ")
                stale = not _alive(int(pid_text), started)
            except (OSError, ValueError):
                stale = now - info.st_mtime > UNOWNED_AGE_S
        except OSError:
            continue
        if stale:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    if removed:
        _LOG.info("removed %d stale scratch folder(s) under %s", len(removed), folder)
    return removed


def make_scratch(parent: Path | None) -> Path:
    """A fresh private (0700) scratch folder under ``parent`` with its owner file, after removing stale ones."""
    remove_stale(parent)
    scratch = Path(tempfile.mkdtemp(prefix=PREFIX, dir=parent))
    pid = os.getpid()
    (scratch / OWNER_FILE).write_text(f"{pid} {_start_time(pid)}".strip())
    return scratch
