"""Default locations on disk."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def default_cache_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_CACHE_HOME/facebridge`` when set, else ``~/.cache/facebridge``."""
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "facebridge"


def default_audit_log(environ: Mapping[str, str] = os.environ) -> Path:
    return default_cache_dir(environ) / "audit.jsonl"


def scratch_parent() -> Path | None:
    """A RAM-backed folder for staging frames when the system has one (``/dev/shm``), else None."""
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else None
