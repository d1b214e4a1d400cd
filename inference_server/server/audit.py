"""Append-only audit log: one JSON object per line recording who processed what, when."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path


class AuditLog:
    """Appends records to a JSON-lines file; safe to use from several threads and processes.

    Each record is written with a single ``write`` on a file opened with ``O_APPEND``, so concurrent
    writers never interleave within a line.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def append(self, event: str, record: Mapping[str, object]) -> None:
        line = json.dumps(
            {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "event": event, **record},
            sort_keys=True,
            default=str,
        )
        data = (line + "\n").encode("utf-8")
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
