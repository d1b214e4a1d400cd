"""A bounded, thread-safe, least-recently-used memo for values that are pure functions of their key.

Used for whatever is cheap to recompute but worth keeping for the next frame or the next slider move
(decoded cache payloads, frame content hashes, colour-corrected faces, composited neighbours). Because a
value depends on its key alone, a hit and a miss give the same result: memos never change pixels.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class Memo(Generic[V]):
    """LRU mapping bounded by the total ``size_of`` its values (default: one unit per entry).

    Args:
        budget: the largest total size kept; the least recently used entries are dropped beyond it (the
            newest entry is always kept, even when it alone exceeds the budget).
        size_of: the size of one value (e.g. its bytes).
    """

    def __init__(self, budget: int, size_of: Callable[[V], int] = lambda _: 1) -> None:
        self.budget = budget
        self._size_of = size_of
        self._items: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._used = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            hit = self._items.get(key)
            if hit is None:
                return None
            self._items.move_to_end(key)
            return hit[0]

    def put(self, key: Hashable, value: V, size: int | None = None) -> V:
        """Remember ``value`` under ``key`` (its size given or measured) and return it."""
        size = self._size_of(value) if size is None else size
        with self._lock:
            if key in self._items:
                self._used -= self._items.pop(key)[1]
            self._items[key] = (value, size)
            self._used += size
            while self._used > self.budget and len(self._items) > 1:
                _, (_, dropped) = self._items.popitem(last=False)
                self._used -= dropped
        return value

    def get_or_compute(self, key: Hashable, compute: Callable[[], V]) -> V:
        """The remembered value, else ``compute()`` remembered (concurrent misses may both compute)."""
        hit = self.get(key)
        return hit if hit is not None else self.put(key, compute())

    def discard(self, key: Hashable) -> None:
        with self._lock:
            if key in self._items:
                self._used -= self._items.pop(key)[1]

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
