"""Append-only audit log: one JSON object per line recording who processed what, when."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from ..store.private import FILE_MODE, StoreError, create_private_file, private_dir


class AuditLog:
    """Appends records to a JSON-lines file; safe to use from several threads and processes.

    Each record is written with a single ``write`` on a file opened with ``O_APPEND``, so concurrent
    writers never interleave within a line.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        private_dir(self.path.parent, own=False)  # (a folder made here is 0700; the file is 0600)
        try:
            create_private_file(self.path)
        except OSError as exc:
            raise StoreError(f"cannot use the audit log {self.path}: {exc.strerror or exc}") from None
        self._lock = threading.Lock()

    def append(self, event: str, record: Mapping[str, object]) -> None:
        line = json.dumps(
            {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "event": event, **record},
            sort_keys=True,
            default=str,
        )
        data = (line + "\n").encode("utf-8")
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
