"""Content-addressed cache of model outputs: checksummed files on disk plus a bounded in-memory LRU.

A payload is a dict of named numpy arrays stored as an ``.npz`` file named after its key. The sha256 of
the file is recorded in the shot database; a payload whose bytes no longer match (a torn write, a disk
fault, a hand edit) is a miss and is removed, never an error. Disk use is bounded by ``max_bytes`` with
least-recently-used eviction; memory use by ``memory_bytes``.
"""

from __future__ import annotations

import hashlib
import io
import os
import uuid
from pathlib import Path

import numpy as np

from .memo import Memo
from .shot_db import CacheEntry, ShotDatabase

Payload = dict[str, np.ndarray]


def _encode(payload: Payload) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=True, **payload)  # (numpy's default, named: the arrays are the other keywords)
    return buffer.getvalue()


def _decode(data: bytes) -> Payload:
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
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.db = db
        self.max_bytes = max_bytes
        self.memory_bytes = memory_bytes
        self._memory: Memo[Payload] = Memo(memory_bytes)

    def _path(self, relpath: str) -> Path:
        return self.directory / relpath

    def contains(self, key: str) -> bool:
        """Whether ``key`` is stored (without reading or verifying it; ``get`` may still miss)."""
        if self._memory.get(key) is not None:
            return True
        entry = self.db.cache_lookup(key)
        return entry is not None and self._path(entry.relpath).exists()

    def get(self, key: str) -> Payload | None:
        hit = self._memory.get(key)
        if hit is not None:
            return hit
        entry = self.db.cache_lookup(key)
        if entry is None:
            return None
        try:
            data = self._path(entry.relpath).read_bytes()
        except OSError:
            self.db.cache_delete(key)
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

    def put(self, key: str, payload: Payload) -> None:
        data = _encode(payload)
        relpath = f"{key[:2]}/{key}.npz"
        path = self._path(relpath)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        self.db.cache_insert(CacheEntry(key, relpath, len(data), hashlib.sha256(data).hexdigest()))
        self._memory.put(key, payload, len(data))
        self._evict()

    def _discard(self, entry: CacheEntry) -> None:
        self._path(entry.relpath).unlink(missing_ok=True)
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
