"""Per-stage wall-clock timings of one frame (reported to the client)."""

from __future__ import annotations

import time


class Stopwatch:
    """Accumulates milliseconds per named stage."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.timings[stage] = self.timings.get(stage, 0.0) + (now - self._t) * 1000.0
        self._t = now
