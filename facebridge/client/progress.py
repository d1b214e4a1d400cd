"""Progress output: a bar on a terminal, JSON lines for host plugins, or nothing.

JSON lines (stdout, one object per line; the contract host plugins parse):
    {"event": "start", "total": N, "server": ADDR}
    {"event": "analyse", "frame": F, "status": "ok|failed", "done": K, "total": M, "replayed": bool}
    {"event": "frame", "frame": F, "status": "ok|warning|failed", "done": K, "total": N, "message": "..."}
    {"event": "end", "total": N, "ok": A, "warnings": W, "failed": B, "elapsed_s": S}
"""

from __future__ import annotations

import json
import sys
import time
from typing import TextIO

from .jobs import AnalyseOutcome, FrameOutcome
from .options import PROGRESS_MODES

MODES = PROGRESS_MODES


class Progress:
    """Reports a run's progress; errors and warnings always go to ``err`` as one line each."""

    def __init__(self, mode: str, total: int, out: TextIO = sys.stdout, err: TextIO = sys.stderr,
                 analyse_total: int = 0) -> None:
        if mode == "auto":
            mode = "bar" if err.isatty() else "none"
        self.mode = mode
        self.total = total
        self.done = 0
        self.failed = 0
        self.warnings = 0
        self.analyse_total = analyse_total
        self.analysed_count = 0
        self._out = out
        self._err = err
        self._start = time.monotonic()

    def _emit(self, **event: object) -> None:
        self._out.write(json.dumps(event) + "\n")
        self._out.flush()

    def start(self, server: str) -> None:
        if self.mode == "json":
            self._emit(event="start", total=self.total, server=server)

    def analysed(self, outcome: AnalyseOutcome) -> None:
        self.analysed_count += 1
        if self.mode == "json":
            self._emit(event="analyse", frame=outcome.frame_number, status=outcome.status, done=self.analysed_count,
                       total=self.analyse_total, replayed=outcome.replayed, message=outcome.message)
        elif self.mode == "bar":
            self._draw(self.analysed_count, self.analyse_total, "analysed", 0)

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
            self._draw(self.done, self.total, "frames", self.failed)

    def _clear_bar(self) -> None:
        if self.mode == "bar":
            self._err.write("\r\033[K")

    def _draw(self, done: int, total: int, what: str, failed: int) -> None:
        width = 30
        filled = int(width * done / max(1, total))
        elapsed = time.monotonic() - self._start
        failures = f"  {failed} failed" if failed else ""
        self._err.write(f"\r\033[K[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {what}"
                        f"{failures}  {elapsed:5.1f}s")
        self._err.flush()

    def end(self) -> None:
        elapsed = round(time.monotonic() - self._start, 3)
        if self.mode == "json":
            self._emit(event="end", total=self.total, ok=self.done - self.failed - self.warnings,
                       warnings=self.warnings, failed=self.failed, elapsed_s=elapsed)
        elif self.mode == "bar":
            self._err.write("\n")
            self._err.flush()
