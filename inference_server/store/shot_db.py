"""The shot database: shots, per-frame analysis, face tracks, landmarks and the cache index (SQLite, WAL).

Every write is its own transaction, committed before the call returns, so a killed server loses nothing
that was reported as done. Connections are per thread (SQLite objects must not cross threads).

Convention: landmarks are stored as ``(68, 2)`` float32 little-endian blobs, x/y in data-window pixels;
rects as four float64 (exactly as the tracker holds them, so a resumed analysis continues bit-identically).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .private import FILE_MODE, StoreError, create_private_file, private_dir, tighten

SCHEMA = """
CREATE TABLE IF NOT EXISTS shots (
    shot TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS frames (
    shot TEXT NOT NULL,
    frame INTEGER NOT NULL,
    content_hash TEXT NOT NULL,
    cut INTEGER NOT NULL,
    keyframe INTEGER NOT NULL,
    PRIMARY KEY (shot, frame)
);
CREATE TABLE IF NOT EXISTS observations (
    shot TEXT NOT NULL,
    frame INTEGER NOT NULL,
    track INTEGER NOT NULL,
    landmarks BLOB NOT NULL,
    rect BLOB NOT NULL,
    score REAL NOT NULL,
    origin TEXT NOT NULL,
    PRIMARY KEY (shot, frame, track)
);
CREATE TABLE IF NOT EXISTS tracks (
    shot TEXT NOT NULL,
    track INTEGER NOT NULL,
    cut INTEGER NOT NULL,
    embedding BLOB NOT NULL,
    PRIMARY KEY (shot, track)
);
CREATE TABLE IF NOT EXISTS cache_entries (
    key TEXT PRIMARY KEY,
    relpath TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    last_used REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS cache_lru ON cache_entries (last_used);
CREATE TABLE IF NOT EXISTS plate_files (
    digest TEXT NOT NULL,
    decoder TEXT NOT NULL,
    facts TEXT NOT NULL,
    added REAL NOT NULL,
    PRIMARY KEY (digest, decoder)
);
CREATE TABLE IF NOT EXISTS file_digests (
    signature TEXT PRIMARY KEY,
    digest TEXT NOT NULL,
    added REAL NOT NULL
);
"""

PLATE_FILES_KEPT = 100_000
"""Rows of ``plate_files`` kept (the oldest go beyond): a row is ~300 bytes, one per distinct frame file decoded."""
FILE_DIGESTS_KEPT = 1_000
"""Rows of ``file_digests`` kept (the oldest go beyond): one per state of a set of model files hashed."""

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Observation:
    frame: int
    track: int
    landmarks: np.ndarray  # (68, 2) float32
    score: float
    origin: str  # "detect" (HOG) | "cnn" (the CNN fallback detector) | "track" | a neural detector's name
    rect: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # the detector-style box the landmarks were fitted in


@dataclass(frozen=True)
class CacheEntry:
    key: str
    relpath: str
    size: int
    sha256: str


def _blob(array: np.ndarray) -> bytes:
    return np.ascontiguousarray(array, dtype="<f4").tobytes()


def _array(blob: bytes, shape: tuple[int, ...]) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4").reshape(shape).astype(np.float32)


def _observation(frame: int, track: int, landmarks: bytes, score: float, origin: str, rect: bytes) -> Observation:
    x0, y0, x1, y1 = (float(v) for v in np.frombuffer(rect, dtype="<f8"))
    return Observation(frame, track, _array(landmarks, (68, 2)), score, origin, (x0, y0, x1, y1))


class ShotDatabase:
    """Thin stateful wrapper over one SQLite file in WAL mode (0600, as are its ``-wal`` and ``-shm`` files).

    Raises:
        StoreError: one line when the file cannot be created or is not a usable SQLite database (garbage,
            truncated, read-only). The database is not moved aside or rebuilt on its own: it holds analyses
            that cost time to redo, and a person may want to look at it; the message says what to do.
    """

    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        self.path = Path(path)
        private_dir(self.path.parent, own=False)
        self._timeout = timeout
        self._local = threading.local()
        try:
            create_private_file(self.path)
            for suffix in ("-wal", "-shm"):
                tighten(f"{self.path}{suffix}", FILE_MODE)
        except OSError as exc:
            raise StoreError(f"cannot use the shot database {self.path}: {exc.strerror or exc}") from None
        try:
            con = self._connection()
            con.executescript(SCHEMA)  # executescript manages its own transaction
            problems = [row[0] for row in con.execute("PRAGMA quick_check")]
            if problems != ["ok"]:
                raise sqlite3.DatabaseError(str(problems[0]) if problems else "quick_check gave nothing")
        except sqlite3.Error as exc:
            self.close()
            raise StoreError(f"the shot database {self.path} cannot be used ({exc}); move it aside (its analyses "
                             "are redone by analysing again) or pass another --cache-dir") from None

    def _connection(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            self._local.con = con
        return con

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        con = self._connection()
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None

    # -- shots ------------------------------------------------------------------------------------
    def ensure_shot(self, shot: str, config: dict[str, object]) -> dict[str, object]:
        """Create the shot with ``config`` unless it exists; return its stored config."""
        text = json.dumps(config, sort_keys=True)
        with self._tx() as con:
            con.execute("INSERT OR IGNORE INTO shots (shot, config, created) VALUES (?, ?, ?)", (shot, text, time.time()))
            row = con.execute("SELECT config FROM shots WHERE shot = ?", (shot,)).fetchone()
        return json.loads(row[0])

    def reset_shot(self, shot: str) -> None:
        """Forget a shot's analysis (frames, observations, tracks)."""
        with self._tx() as con:
            for table in ("shots", "frames", "observations", "tracks"):
                con.execute(f"DELETE FROM {table} WHERE shot = ?", (shot,))  # noqa: S608 - fixed names

    def truncate_shot(self, shot: str, frame: int) -> None:
        """Forget a shot's analysis from ``frame`` on: those frames, their observations and the tracks first seen
        there; the frames before it stand. The shot's ``created`` moves on (the analysis as it now stands began
        again), so whatever is remembered by :meth:`analysis_fingerprint` sees the change even once the frames are
        committed again to the same counts."""
        with self._tx() as con:
            con.execute("DELETE FROM frames WHERE shot = ? AND frame >= ?", (shot, frame))
            con.execute("DELETE FROM observations WHERE shot = ? AND frame >= ?", (shot, frame))
            con.execute("DELETE FROM tracks WHERE shot = ? AND track NOT IN "
                        "(SELECT DISTINCT track FROM observations WHERE shot = ?)", (shot, shot))
            row = con.execute("SELECT created FROM shots WHERE shot = ?", (shot,)).fetchone()
            if row is not None:
                con.execute("UPDATE shots SET created = ? WHERE shot = ?",
                            (max(time.time(), float(row[0]) + 1e-6), shot))

    def shot_config(self, shot: str) -> dict[str, object] | None:
        """The analysis settings ``shot`` was analysed with, or None when the shot is unknown."""
        row = self._connection().execute("SELECT config FROM shots WHERE shot = ?", (shot,)).fetchone()
        return json.loads(row[0]) if row else None

    def import_shot(self, shot: str, config: dict[str, object],
                    frames: Iterable[tuple[int, str, int, bool, Iterable[Observation]]],
                    tracks: dict[int, tuple[int, np.ndarray]]) -> None:
        """Replace ``shot``'s analysis with the one given (``frames``: frame, content hash, cut, keyframe,
        observations), in one transaction: readers see the old analysis or the new one, never a mixture."""
        with self._tx() as con:
            for table in ("shots", "frames", "observations", "tracks"):
                con.execute(f"DELETE FROM {table} WHERE shot = ?", (shot,))  # noqa: S608 - fixed names
            con.execute("INSERT INTO shots (shot, config, created) VALUES (?, ?, ?)",
                        (shot, json.dumps(config, sort_keys=True), time.time()))
            for frame, content_hash, cut, keyframe, observations in frames:
                con.execute("INSERT INTO frames VALUES (?, ?, ?, ?, ?)", (shot, frame, content_hash, cut, int(keyframe)))
                con.executemany(
                    "INSERT INTO observations VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(shot, frame, o.track, _blob(o.landmarks), np.array(o.rect, "<f8").tobytes(), float(o.score),
                      o.origin) for o in observations],
                )
            con.executemany("INSERT INTO tracks VALUES (?, ?, ?, ?)",
                            [(shot, track, cut_id, _blob(embedding)) for track, (cut_id, embedding) in sorted(tracks.items())])

    def shots(self) -> list[str]:
        return [r[0] for r in self._connection().execute("SELECT shot FROM shots ORDER BY shot")]

    # -- per-frame analysis -----------------------------------------------------------------------
    def commit_frame(self, shot: str, frame: int, content_hash: str, cut: int,
                     observations: Iterable[Observation], new_tracks: Iterable[tuple[int, int, np.ndarray]],
                     keyframe: bool = False) -> None:
        """Record one analysed frame and its observations (and tracks first seen on it) atomically."""
        with self._tx() as con:
            con.execute("INSERT OR REPLACE INTO frames VALUES (?, ?, ?, ?, ?)",
                        (shot, frame, content_hash, cut, int(keyframe)))
            con.execute("DELETE FROM observations WHERE shot = ? AND frame = ?", (shot, frame))
            con.executemany(
                "INSERT INTO observations VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(shot, frame, o.track, _blob(o.landmarks), np.array(o.rect, "<f8").tobytes(), float(o.score), o.origin)
                 for o in observations],
            )
            con.executemany(
                "INSERT OR REPLACE INTO tracks VALUES (?, ?, ?, ?)",
                [(shot, track, cut_id, _blob(embedding)) for track, cut_id, embedding in new_tracks],
            )

    def analysed_frames(self, shot: str) -> dict[int, tuple[str, int]]:
        """frame -> (content hash, cut id) for every committed frame of ``shot``."""
        rows = self._connection().execute("SELECT frame, content_hash, cut FROM frames WHERE shot = ?", (shot,))
        return {f: (h, c) for f, h, c in rows}

    def frame_record(self, shot: str, frame: int) -> tuple[str, int] | None:
        """(content hash, cut id) of one committed frame, or None."""
        row = self._connection().execute(
            "SELECT content_hash, cut FROM frames WHERE shot = ? AND frame = ?", (shot, frame)).fetchone()
        return (row[0], row[1]) if row else None

    def analysis_fingerprint(self, shot: str) -> tuple[float, int, int]:
        """(shot created, frames committed, observations committed): changes whenever the analysis does."""
        con = self._connection()
        created = con.execute("SELECT created FROM shots WHERE shot = ?", (shot,)).fetchone()
        frames = con.execute("SELECT COUNT(*) FROM frames WHERE shot = ?", (shot,)).fetchone()[0]
        observations = con.execute("SELECT COUNT(*) FROM observations WHERE shot = ?", (shot,)).fetchone()[0]
        return (float(created[0]) if created else 0.0), int(frames), int(observations)

    def keyframes(self, shot: str) -> list[int]:
        rows = self._connection().execute(
            "SELECT frame FROM frames WHERE shot = ? AND keyframe = 1 ORDER BY frame", (shot,))
        return [r[0] for r in rows]

    def frame_observations(self, shot: str, frame: int) -> list[Observation]:
        rows = self._connection().execute(
            "SELECT frame, track, landmarks, score, origin, rect FROM observations WHERE shot = ? AND frame = ? "
            "ORDER BY track", (shot, frame))
        return [_observation(*row) for row in rows]

    def observations(self, shot: str) -> list[Observation]:
        rows = self._connection().execute(
            "SELECT frame, track, landmarks, score, origin, rect FROM observations WHERE shot = ? ORDER BY track, frame",
            (shot,))
        return [_observation(*row) for row in rows]

    def tracks(self, shot: str) -> dict[int, tuple[int, np.ndarray]]:
        """track id -> (cut id, identity embedding (128,) float32)."""
        rows = self._connection().execute("SELECT track, cut, embedding FROM tracks WHERE shot = ? ORDER BY track",
                                          (shot,))
        return {t: (c, _array(e, (-1,))) for t, c, e in rows}

    # -- what plate files decode to ---------------------------------------------------------------
    def plate_file_facts(self, digest: str, decoder: str) -> str | None:
        """What the encoded file of sha256 ``digest`` decoded to with ``decoder`` (the text given to
        :meth:`remember_plate_file`), or None when it was not recorded (or cannot be read now: the file is then
        decoded, as an unknown one)."""
        try:
            row = self._connection().execute("SELECT facts FROM plate_files WHERE digest = ? AND decoder = ?",
                                             (digest, decoder)).fetchone()
        except sqlite3.Error as exc:
            _LOG.warning("shot database %s: cannot look up a plate file (%s)", self.path, exc)
            return None
        return str(row[0]) if row else None

    def remember_plate_file(self, digest: str, decoder: str, facts: str, kept: int = PLATE_FILES_KEPT) -> bool:
        """Record what the file of sha256 ``digest`` decodes to with ``decoder``; beyond ``kept`` rows the
        oldest are forgotten. Best effort (it only spares a later decode): False, logged, when the database
        cannot take it (locked past the timeout, read-only, full)."""
        return self._remember_bounded("plate_files", (digest, decoder, facts, time.time()), kept,
                                      "a plate file", "it will be decoded again")

    def _remember_bounded(self, table: str, row: tuple[object, ...], kept: int, what: str, otherwise: str) -> bool:
        """Insert (or replace) ``row`` into ``table`` (one of this module's tables whose last column is the time
        ``added``) and forget its oldest rows beyond ``kept``; False, logged with ``what`` and what happens
        ``otherwise``, when the database cannot take it (locked past the timeout, read-only, full)."""
        try:
            with self._tx() as con:
                con.execute(f"INSERT OR REPLACE INTO {table} VALUES ({', '.join('?' * len(row))})", row)
                excess = int(con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]) - kept
                if excess > 0:
                    con.execute(f"DELETE FROM {table} WHERE rowid IN "
                                f"(SELECT rowid FROM {table} ORDER BY added, rowid LIMIT ?)", (excess,))
        except sqlite3.Error as exc:
            _LOG.warning("shot database %s: cannot record %s (%s); %s", self.path, what, exc, otherwise)
            return False
        return True

    # -- digests of files by what the file system says of them -----------------------------------
    def file_digest(self, signature: str) -> str | None:
        """The digest recorded for the files whose state is ``signature`` (see
        :func:`inference_server.file_digests.files_signature`), or None (not recorded, or the
        database cannot be read now: the files are then hashed)."""
        try:
            row = self._connection().execute("SELECT digest FROM file_digests WHERE signature = ?",
                                             (signature,)).fetchone()
        except sqlite3.Error as exc:
            _LOG.warning("shot database %s: cannot look up a file digest (%s)", self.path, exc)
            return None
        return str(row[0]) if row else None

    def remember_file_digest(self, signature: str, digest: str, kept: int = FILE_DIGESTS_KEPT) -> bool:
        """Record ``digest`` for the files whose state is ``signature``; beyond ``kept`` rows the oldest are
        forgotten. Best effort (it only spares hashing the files again): False, logged, when the database cannot
        take it."""
        return self._remember_bounded("file_digests", (signature, digest, time.time()), kept, "a file digest",
                                      "the files will be hashed again")

    # -- cache index ------------------------------------------------------------------------------
    def cache_lookup(self, key: str) -> CacheEntry | None:
        row = self._connection().execute(
            "SELECT key, relpath, size, sha256 FROM cache_entries WHERE key = ?", (key,)).fetchone()
        return CacheEntry(*row) if row else None

    def cache_touch(self, key: str) -> None:
        with self._tx() as con:
            con.execute("UPDATE cache_entries SET last_used = ? WHERE key = ?", (time.time(), key))

    def cache_insert(self, entry: CacheEntry) -> None:
        with self._tx() as con:
            con.execute("INSERT OR REPLACE INTO cache_entries VALUES (?, ?, ?, ?, ?)",
                        (entry.key, entry.relpath, entry.size, entry.sha256, time.time()))

    def cache_delete(self, key: str) -> None:
        with self._tx() as con:
            con.execute("DELETE FROM cache_entries WHERE key = ?", (key,))

    def cache_total_bytes(self) -> int:
        return int(self._connection().execute("SELECT COALESCE(SUM(size), 0) FROM cache_entries").fetchone()[0])

    def cache_oldest(self, limit: int) -> list[CacheEntry]:
        rows = self._connection().execute(
            "SELECT key, relpath, size, sha256 FROM cache_entries ORDER BY last_used, key LIMIT ?", (limit,))
        return [CacheEntry(*r) for r in rows]
