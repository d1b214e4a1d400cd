"""What the client remembers of the shots it analysed: their plate pattern, sources and server.

The server's shot database records no input paths (a client names the plate it previews), so the
``process`` and ``analyse`` commands note, beside the cache dir of the server they used, where each shot's
plates and sources are. ``facebridge panel`` with no arguments opens the most recent one (after
``facebridge demo``: the demo shot). One JSON object per cache dir, ``recent_shots.json``, written to a
temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from facebridge.files import write_atomic

FILE_NAME = "recent_shots.json"
MAX_SHOTS = 200


@dataclass(frozen=True)
class RecentShot:
    """A shot the client analysed.

    Attributes:
        shot: the shot id in the server's database.
        input: the plate pattern, absolute (``/shots/sh010/plate.####.exr``).
        sources: source images, absolute paths.
        server: ``HOST:PORT`` of the server used, or "" for a private server on this cache dir.
        analysed_at: seconds since the epoch.
    """

    shot: str
    input: str
    sources: tuple[str, ...] = ()
    server: str = ""
    analysed_at: float = 0.0


def _read(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}   # none yet, or unreadable: nothing is remembered (the panel then asks for a shot)
    return {k: v for k, v in data.items() if isinstance(v, dict)} if isinstance(data, dict) else {}


def record(cache_dir: Path, shot: str, input_pattern: str, sources: list[str], server: str = "",
           now: float | None = None) -> RecentShot:
    """Remember ``shot``'s plates and sources in ``cache_dir`` (the newest ``MAX_SHOTS`` are kept)."""
    entry = RecentShot(shot, os.path.abspath(input_pattern), tuple(os.path.abspath(s) for s in sources), server,
                       time.time() if now is None else now)
    path = Path(cache_dir) / FILE_NAME
    shots = _read(path)
    shots[shot] = {**asdict(entry), "sources": list(entry.sources)}
    newest = sorted(shots.items(), key=lambda kv: float(kv[1].get("analysed_at", 0.0)), reverse=True)[:MAX_SHOTS]
    write_atomic(path, (json.dumps(dict(newest), indent=2, sort_keys=True) + "\n").encode("utf-8"))
    return entry


def _entry(data: dict[str, Any]) -> RecentShot | None:
    try:
        return RecentShot(str(data["shot"]), str(data["input"]), tuple(str(s) for s in data.get("sources", ())),
                          str(data.get("server", "")), float(data.get("analysed_at", 0.0)))
    except (KeyError, TypeError, ValueError):
        return None


def lookup(cache_dir: Path, shot: str = "") -> RecentShot | None:
    """``shot``'s record, or the most recently analysed shot's when ``shot`` is empty; None when unknown."""
    entries = [e for e in (_entry(d) for d in _read(Path(cache_dir) / FILE_NAME).values()) if e is not None]
    if shot:
        entries = [e for e in entries if e.shot == shot]
    return max(entries, key=lambda e: e.analysed_at, default=None)
