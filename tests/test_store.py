"""The shot database (a real SQLite file in WAL mode) and the checksummed payload cache."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np

from inference_server.store.payload_cache import PayloadCache
from inference_server.store.shot_db import Observation, ShotDatabase


def _landmarks(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((68, 2)).astype(np.float32) * 500


def test_database_is_wal_and_round_trips_analysis(tmp_path: Path) -> None:
    db = ShotDatabase(tmp_path / "shots.sqlite")
    assert sqlite3.connect(tmp_path / "shots.sqlite").execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.ensure_shot("sh010", {"keyframe_interval": 5}) == {"keyframe_interval": 5}
    assert db.ensure_shot("sh010", {"keyframe_interval": 9}) == {"keyframe_interval": 5}
    emb = np.arange(128, dtype=np.float32)
    db.commit_frame("sh010", 1001, "h1", 0, [Observation(1001, 0, _landmarks(1), 1.5, "detect")], [(0, 0, emb)])
    db.commit_frame("sh010", 1002, "h2", 0, [Observation(1002, 0, _landmarks(2), 0.9, "track")], [])
    assert db.analysed_frames("sh010") == {1001: ("h1", 0), 1002: ("h2", 0)}
    obs = db.observations("sh010")
    assert [(o.frame, o.track, o.origin) for o in obs] == [(1001, 0, "detect"), (1002, 0, "track")]
    assert np.array_equal(obs[0].landmarks, _landmarks(1))
    assert np.array_equal(db.tracks("sh010")[0][1], emb)
    db.reset_shot("sh010")
    assert db.analysed_frames("sh010") == {} and db.shots() == []


def test_truncating_a_shot_keeps_the_frames_before_and_changes_its_fingerprint(tmp_path: Path) -> None:
    """A changed plate at frame 1003 truncates the analysis there: frames 1001-1002 (and the track first seen on
    them) stay, frames from 1003 and the track first seen on 1004 go, other shots are untouched; committed again
    to the same counts, the fingerprint still differs (memos of the old analysis are not served)."""
    db = ShotDatabase(tmp_path / "shots.sqlite")
    for shot in ("sh010", "sh020"):
        db.ensure_shot(shot, {})
        for frame in range(1001, 1006):
            observations = [Observation(frame, 0, _landmarks(frame), 1.0, "detect")]
            if frame >= 1004:
                observations.append(Observation(frame, 1, _landmarks(frame + 100), 1.0, "detect"))
            new = [(0, 0, np.zeros(128, np.float32))] if frame == 1001 else \
                [(1, 0, np.ones(128, np.float32))] if frame == 1004 else []
            db.commit_frame(shot, frame, f"h{frame}", 0, observations, new, keyframe=frame in (1001, 1004))
    before = db.analysis_fingerprint("sh010")
    db.truncate_shot("sh010", 1003)
    assert db.analysed_frames("sh010") == {1001: ("h1001", 0), 1002: ("h1002", 0)}
    assert sorted(db.tracks("sh010")) == [0] and db.keyframes("sh010") == [1001]
    assert [o.frame for o in db.observations("sh010")] == [1001, 1002]
    assert len(db.analysed_frames("sh020")) == 5 and sorted(db.tracks("sh020")) == [0, 1]
    for frame in range(1003, 1006):  # the same counts again (the changed plate analysed anew)
        observations = [Observation(frame, 0, _landmarks(frame), 1.0, "track")]
        if frame >= 1004:
            observations.append(Observation(frame, 1, _landmarks(frame + 100), 1.0, "detect"))
        db.commit_frame("sh010", frame, f"g{frame}", 0, observations,
                        [(1, 0, np.ones(128, np.float32))] if frame == 1004 else [])
    after = db.analysis_fingerprint("sh010")
    assert after[1:] == before[1:] and after != before


def test_plate_file_facts_are_kept_per_decoder_across_connections_and_the_oldest_go(tmp_path: Path) -> None:
    db = ShotDatabase(tmp_path / "shots.sqlite")
    assert db.plate_file_facts("d1", "OpenImageIO 3.2") is None
    db.remember_plate_file("d1", "OpenImageIO 3.2", '{"a": 1}', kept=3)
    db.remember_plate_file("d1", "OpenImageIO 3.3", '{"a": 2}', kept=3)
    reopened = ShotDatabase(tmp_path / "shots.sqlite")  # another server on the same database
    assert reopened.plate_file_facts("d1", "OpenImageIO 3.2") == '{"a": 1}'
    assert reopened.plate_file_facts("d1", "OpenImageIO 3.3") == '{"a": 2}'
    assert reopened.plate_file_facts("d1", "OpenImageIO 9") is None
    for digest in ("d2", "d3"):
        reopened.remember_plate_file(digest, "OpenImageIO 3.2", "{}", kept=3)
    assert db.plate_file_facts("d1", "OpenImageIO 3.2") is None  # the oldest of four went
    assert [db.plate_file_facts(d, "OpenImageIO 3.2") for d in ("d2", "d3")] == ["{}", "{}"]
    assert db.plate_file_facts("d1", "OpenImageIO 3.3") == '{"a": 2}'


def test_recording_a_plate_file_is_best_effort_when_the_database_is_locked(tmp_path: Path) -> None:
    db = ShotDatabase(tmp_path / "shots.sqlite", timeout=0.1)
    other = sqlite3.connect(tmp_path / "shots.sqlite", isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another process holding the database past the timeout
    try:
        assert db.remember_plate_file("d1", "OpenImageIO 3.2", "{}") is False
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert db.plate_file_facts("d1", "OpenImageIO 3.2") is None
    assert db.remember_plate_file("d1", "OpenImageIO 3.2", "{}") is True
    assert db.plate_file_facts("d1", "OpenImageIO 3.2") == "{}"


def test_committed_frames_survive_a_killed_writer(tmp_path: Path) -> None:
    path = tmp_path / "shots.sqlite"
    script = (
        "import os, numpy as np\n"
        "from inference_server.store.shot_db import ShotDatabase, Observation\n"
        f"db = ShotDatabase(__import__('pathlib').Path({str(path)!r}))\n"
        "for f in range(5):\n"
        "    db.commit_frame('s', f, 'h%d' % f, 0, [Observation(f, 0, np.zeros((68, 2), np.float32), 1.0, 'detect')], [])\n"
        "os._exit(9)\n"
    )
    assert subprocess.run([sys.executable, "-c", script]).returncode == 9
    assert sorted(ShotDatabase(path).analysed_frames("s")) == [0, 1, 2, 3, 4]


def test_payload_cache_hits_and_treats_corruption_as_a_miss(tmp_path: Path) -> None:
    db = ShotDatabase(tmp_path / "db.sqlite")
    cache = PayloadCache(tmp_path / "payloads", db, memory_bytes=0)
    face = np.random.default_rng(0).random((64, 64, 3)).astype(np.float16)
    cache.put("k" * 64, {"face": face, "box": np.array([1, 2, 3, 4])})
    got = cache.get("k" * 64)
    assert got is not None and np.array_equal(got["face"], face)
    entry = db.cache_lookup("k" * 64)
    assert entry is not None
    path = tmp_path / "payloads" / entry.relpath
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    fresh = PayloadCache(tmp_path / "payloads", db, memory_bytes=0)
    assert fresh.get("k" * 64) is None
    assert not path.exists() and db.cache_lookup("k" * 64) is None


def test_payload_cache_evicts_least_recently_used(tmp_path: Path) -> None:
    db = ShotDatabase(tmp_path / "db.sqlite")
    block = {"x": np.zeros(10_000, np.uint8)}
    cache = PayloadCache(tmp_path / "p", db, max_bytes=35_000, memory_bytes=0)
    for name in ("a", "b", "c"):
        cache.put(name * 8, block)
    assert cache.get("a" * 8) is not None  # a is now the most recently used
    cache.put("d" * 8, block)
    assert db.cache_lookup("b" * 8) is None, "the least recently used entry should be gone"
    assert all(db.cache_lookup(k * 8) is not None for k in "acd")
    assert db.cache_total_bytes() <= 35_000


def test_memo_is_bounded_by_size_and_evicts_least_recently_used() -> None:
    from inference_server.store.memo import Memo

    memo: Memo[np.ndarray] = Memo(budget=3000, size_of=lambda a: a.nbytes)
    for name in "abc":
        memo.put(name, np.zeros(1000, np.uint8))
    assert memo.get("a") is not None          # "a" is now the most recently used
    memo.put("d", np.zeros(1000, np.uint8))   # over budget: "b", the least recently used, goes
    assert memo.get("b") is None and memo.get("a") is not None and memo.get("d") is not None
    assert len(memo) == 3
    calls: list[int] = []

    def ones() -> np.ndarray:
        calls.append(1)
        return np.ones(10, np.uint8)

    def zeros() -> np.ndarray:
        calls.append(1)
        return np.zeros(10, np.uint8)

    value = memo.get_or_compute("e", ones)
    again = memo.get_or_compute("e", zeros)
    assert calls == [1] and again is value
    memo.put("huge", np.zeros(10_000, np.uint8))  # larger than the budget: kept alone
    assert len(memo) == 1 and memo.get("huge") is not None
