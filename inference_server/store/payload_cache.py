"""Content-addressed cache of model outputs: checksummed files on disk plus a bounded in-memory LRU.

A payload is a dict of named numpy arrays stored as an ``.npz`` file named after its key
(``ab/<key>.npz``: the path is derived from the key, a sha256 hex digest, never read from the database, so
a crafted index row cannot point a read or a delete elsewhere). The sha256 of the file is recorded in the
shot database; a payload whose bytes no longer match (a torn write, a disk fault, a hand edit) is a miss and
is removed, never an error. The cache is an optimisation: a write that fails (disk full, read-only) leaves
no temporary file, is logged once, and the payload is still kept in memory. Disk use is bounded by
``max_bytes`` with least-recently-used eviction; memory use by ``memory_bytes``. Folders are 0700, files 0600.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import sqlite3
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .memo import Memo
from .npz_file import npz_pieces, pieces_size, stored_arrays
from .private import FILE_MODE, private_dir
from .shot_db import CacheEntry, ShotDatabase
from .single_flight import SingleFlight

_LOG = logging.getLogger(__name__)
_KEY = re.compile(r"[0-9A-Za-z_-]{2,128}")  # (sha256 hex in practice; never a separator or a dot)

Payload = dict[str, np.ndarray]


_NPY_HEADERS = threading.Lock()
"""Held while a payload is decoded. numpy reads each ``.npy`` header with ``ast.literal_eval``, and CPython 3.11
keeps the AST conversion's recursion depth in one counter per interpreter: two threads converting at once (the
GIL passed between them by a garbage collection that runs Python code) fail with ``SystemError: AST constructor
recursion depth mismatch`` (reproduced here with Python 3.11.7: a render's frame failed so in CI; reported as
python/cpython#106905 among others). So payloads are decoded one at a time."""


def _decode(data: bytes) -> Payload:
    """The payload of a file's checked bytes: read-only views into them when its members are stored ``.npy`` files
    (:func:`~.npz_file.stored_arrays`: nothing copied, no CRC), else as ``np.load`` reads it."""
    with _NPY_HEADERS:
        arrays = stored_arrays(data)
        if arrays is not None:
            return arrays
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}


class PayloadCache:
    """Get and put payloads by key.

    Args:
        directory: where payload files live (``ab/<key>.npz``).
        db: the shot database holding the cache index.
        max_bytes: disk budget; the least recently used payloads are evicted beyond it.
        memory_bytes: budget of the in-memory LRU in front of the disk.
    """

    def __init__(self, directory: Path, db: ShotDatabase, max_bytes: int = 20 * 1024**3,
                 memory_bytes: int = 1024**3) -> None:
        self.directory = private_dir(directory)
        self.db = db
        self.max_bytes = max_bytes
        self.memory_bytes = memory_bytes
        self._memory: Memo[Payload] = Memo(memory_bytes)
        self._flights: SingleFlight[tuple[Payload, bool]] = SingleFlight()
        self._write_failed = False

    def _path(self, key: str) -> Path | None:
        """Where the payload of ``key`` lives; None for a key with other characters than letters, digits, ``_``
        and ``-`` (never one of ours: a crafted index row)."""
        return self.directory / key[:2] / f"{key}.npz" if _KEY.fullmatch(key) else None

    def contains(self, key: str) -> bool:
        """Whether ``key`` is stored and its file's bytes still match their recorded sha256 (a corrupt or
        missing file is forgotten, so it is stored again)."""
        if self._memory.get(key) is not None:
            return True
        entry = self.db.cache_lookup(key)
        path = self._path(key)
        if entry is None or path is None:
            return False
        try:
            data = path.read_bytes()
        except OSError:
            self._discard(entry)
            return False
        if hashlib.sha256(data).hexdigest() != entry.sha256:
            self._discard(entry)
            return False
        return True

    def get(self, key: str) -> Payload | None:
        hit = self._memory.get(key)
        if hit is not None:
            return hit
        entry = self.db.cache_lookup(key)
        path = self._path(key)
        if entry is None or path is None:
            return None
        try:
            data = path.read_bytes()
        except OSError:
            self._discard(entry)
            return None
        if hashlib.sha256(data).hexdigest() != entry.sha256:
            self._discard(entry)
            return None
        try:
            payload = _decode(data)
        except (ValueError, OSError, KeyError):
            self._discard(entry)
            return None
        self.db.cache_touch(key)
        self._memory.put(key, payload, len(data))
        return payload

    def get_or_compute(self, key: str, compute: Callable[[], Payload]) -> tuple[Payload, bool]:
        """``(payload, hit)``: the cached payload, else ``compute()``'s, put under ``key``. Threads asking for a
        key another thread is computing wait for it (a hit for them) instead of computing it twice."""
        def fetch() -> tuple[Payload, bool]:
            hit = self.get(key)
            if hit is not None:
                return hit, True
            payload = compute()
            self.put(key, payload)
            return payload, False

        (payload, hit), shared = self._flights.run(key, fetch)
        return payload, hit or shared

    def put(self, key: str, payload: Payload) -> None:
        """Keep ``payload`` under ``key``: in memory always, on disk when the write succeeds (a failed write
        is logged once and leaves no temporary file: the cache only makes things faster)."""
        pieces = npz_pieces(payload)  # (the .npz file as headers and views of the arrays: nothing copied)
        size = pieces_size(pieces)
        self._memory.put(key, payload, size)
        path = self._path(key)
        if path is None:
            raise ValueError(f"cache key {key!r} has characters other than letters, digits, _ and -")
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        digest = hashlib.sha256()
        try:
            private_dir(path.parent)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
            try:
                for piece in pieces:
                    digest.update(piece)
                    view = memoryview(piece)
                    while view:
                        view = view[os.write(fd, view):]
                # no fsync: a payload torn by a crash fails its sha256 check on the next read and is a miss
            finally:
                os.close(fd)
            os.replace(tmp, path)
            self.db.cache_insert(CacheEntry(key, f"{key[:2]}/{key}.npz", size, digest.hexdigest()))
        except (OSError, sqlite3.Error) as exc:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
            if not self._write_failed:
                self._write_failed = True
                _LOG.warning("model-output cache: cannot store payloads in %s (%s); going on without the disk "
                             "cache (logged once)", self.directory, exc)
            return
        self._evict()

    def _discard(self, entry: CacheEntry) -> None:
        path = self._path(entry.key)
        if path is not None:
            try:
                path.unlink(missing_ok=True)
            except OSError:
                pass
        self.db.cache_delete(entry.key)
        self._memory.discard(entry.key)

    def _evict(self) -> None:
        total = self.db.cache_total_bytes()
        while total > self.max_bytes:
            oldest = self.db.cache_oldest(16)
            if not oldest:
                return
            for entry in oldest:
                self._discard(entry)
                total -= entry.size
                if total <= self.max_bytes:
                    return
