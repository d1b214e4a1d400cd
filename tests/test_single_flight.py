"""One computation per key at a time (issue 15): two frames rendering each other's neighbour run its model once."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from inference_server.store.payload_cache import PayloadCache
from inference_server.store.shot_db import ShotDatabase
from inference_server.store.single_flight import SingleFlight


def _together(count: int, work) -> list[object]:
    """Run ``work(i)`` on ``count`` threads released at the same moment; their results in order."""
    start = threading.Barrier(count)
    results: list[object] = [None] * count

    def run(i: int) -> None:
        start.wait()
        results[i] = work(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return results


def test_concurrent_askers_share_one_computation() -> None:
    flights: SingleFlight[int] = SingleFlight()
    calls = []
    entered = threading.Event()
    release = threading.Event()

    def compute() -> int:
        calls.append(1)
        entered.set()
        release.wait(5)
        return 42

    def ask(i: int) -> tuple[int, bool]:
        if i > 0:
            entered.wait(5)  # the others ask while the first computes
        else:
            threading.Timer(0.3, release.set).start()
        return flights.run("k", compute)

    results = _together(4, ask)
    assert len(calls) == 1
    assert sorted(map(repr, results)) == ["(42, False)", "(42, True)", "(42, True)", "(42, True)"]
    assert flights.in_flight() == 0
    assert flights.run("k", lambda: 7) == (7, False)  # nothing is remembered once a flight lands


def test_a_failed_computation_is_not_shared() -> None:
    flights: SingleFlight[str] = SingleFlight()
    entered, release = threading.Event(), threading.Event()

    def failing() -> str:
        entered.set()
        release.wait(5)
        raise RuntimeError("frame 12: broken plate")

    def ask(i: int) -> object:
        if i == 0:
            threading.Timer(0.3, release.set).start()
            with pytest.raises(RuntimeError, match="broken plate"):
                flights.run("k", failing)
            return "raised"
        entered.wait(5)
        return flights.run("k", lambda: "own")

    assert _together(2, ask) == ["raised", ("own", False)]


def test_the_payload_cache_computes_a_key_once_across_threads(tmp_path: Path) -> None:
    cache = PayloadCache(tmp_path / "payloads", ShotDatabase(tmp_path / "shots.sqlite"))
    calls = []
    entered, release = threading.Event(), threading.Event()

    def compute() -> dict[str, np.ndarray]:
        calls.append(1)
        entered.set()
        release.wait(5)
        return {"face": np.arange(12, dtype=np.float32).reshape(3, 4)}

    def ask(i: int) -> tuple[dict[str, np.ndarray], bool]:
        if i == 0:
            threading.Timer(0.3, release.set).start()
        else:
            entered.wait(5)
        return cache.get_or_compute("ab" + "0" * 62, compute)

    results = [r for r in _together(3, ask) if isinstance(r, tuple)]
    assert len(calls) == 1 and len(results) == 3
    assert sorted(hit for _, hit in results) == [False, True, True]
    for payload, _ in results:
        assert np.array_equal(payload["face"], np.arange(12, dtype=np.float32).reshape(3, 4))
    # stored on disk too: a fresh cache over the same files reads it back as a hit
    again = PayloadCache(tmp_path / "payloads", ShotDatabase(tmp_path / "shots.sqlite"), memory_bytes=0)
    payload, hit = again.get_or_compute("ab" + "0" * 62, lambda: {"face": np.zeros(1, np.float32)})
    assert hit and payload["face"].shape == (3, 4)
