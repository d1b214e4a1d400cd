"""Progress output: a bar on a terminal, JSON lines for host plugins, or nothing.

JSON lines (stdout, one object per line; the contract host plugins parse):
    {"event": "start", "total": N, "server": ADDR}
    {"event": "frame", "frame": F, "status": "ok|warning|failed", "done": K, "total": N, "message": "..."}
    {"event": "end", "total": N, "ok": A, "warnings": W, "failed": B, "elapsed_s": S}
"""

from __future__ import annotations

import json
import sys
import time
from typing import TextIO

from .grpc_client import FrameOutcome

MODES = ("auto", "bar", "json", "none")


class Progress:
    """Reports a run's progress; errors and warnings always go to ``err`` as one line each."""

    def __init__(self, mode: str, total: int, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> None:
        if mode == "auto":
            mode = "bar" if err.isatty() else "none"
        self.mode = mode
        self.total = total
        self.done = 0
        self.failed = 0
        self.warnings = 0
        self._out = out
        self._err = err
        self._start = time.monotonic()

    def _emit(self, **event: object) -> None:
        self._out.write(json.dumps(event) + "\n")
        self._out.flush()

    def start(self, server: str) -> None:
        if self.mode == "json":
            self._emit(event="start", total=self.total, server=server)

    def frame(self, outcome: FrameOutcome) -> None:
        self.done += 1
        self.failed += outcome.status == "failed"
        self.warnings += outcome.status == "warning"
        if outcome.message:
            self._clear_bar()
            label = "error" if outcome.failed else "warning"
            self._err.write(f"facebridge: {label}: {outcome.message}\n")
            self._err.flush()
        if self.mode == "json":
            self._emit(event="frame", frame=outcome.frame_number, status=outcome.status, kind=outcome.kind,
                       done=self.done, total=self.total, message=outcome.message, output=outcome.output_path)
        elif self.mode == "bar":
            self._draw_bar()

    def _clear_bar(self) -> None:
        if self.mode == "bar":
            self._err.write("\r\033[K")

    def _draw_bar(self) -> None:
        width = 30
        filled = int(width * self.done / max(1, self.total))
        elapsed = time.monotonic() - self._start
        eta = elapsed / self.done * (self.total - self.done) if self.done else 0.0
        failed = f"  {self.failed} failed" if self.failed else ""
        self._err.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} frames"
                        f"{failed}  {elapsed:5.1f}s  eta {eta:4.0f}s")
        self._err.flush()

    def end(self) -> None:
        elapsed = round(time.monotonic() - self._start, 3)
        if self.mode == "json":
            self._emit(event="end", total=self.total, ok=self.done - self.failed - self.warnings,
                       warnings=self.warnings, failed=self.failed, elapsed_s=elapsed)
        elif self.mode == "bar":
            self._err.write("\n")
            self._err.flush()
