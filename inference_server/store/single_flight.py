"""One computation per key at a time: a thread that asks for a key another thread is computing waits for that
result instead of computing it again.

Frames of a stream render two at a time, and each frame's stabilisation renders its neighbours: frame t and
frame t + 1 would both run t + 1's model stage at once. The computations are pure functions of their keys, so
sharing one thread's result gives the same bits as computing it twice.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar, cast

V = TypeVar("V")


class _Flight(Generic[V]):
    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: V | None = None
        self.error: BaseException | None = None


class SingleFlight(Generic[V]):
    """Runs ``compute`` for a key once among the threads asking for it at the same time.

    A failed computation is not shared: its error goes to the thread that ran it, and each waiting thread then
    computes for itself (one bad frame must not fail another). Nothing is remembered once a flight lands:
    keeping results is the caller's cache's job.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[Hashable, _Flight[V]] = {}

    def run(self, key: Hashable, compute: Callable[[], V]) -> tuple[V, bool]:
        """``(value, shared)``: ``compute()``'s result, or another thread's result for the same key
        (``shared`` True) when that thread was computing it already."""
        with self._lock:
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
        if not leader:
            flight.done.wait()
            if flight.error is None:
                return cast(V, flight.value), True  # (set before done was)
            return compute(), False
        try:
            flight.value = compute()
            return flight.value, False
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                del self._flights[key]
            flight.done.set()

    def in_flight(self) -> int:
        """How many keys are being computed now."""
        with self._lock:
            return len(self._flights)
