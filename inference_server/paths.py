"""Default locations on disk."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from facebridge.paths import default_cache_dir

__all__ = ["default_audit_log", "default_cache_dir", "scratch_parent"]


def default_audit_log(environ: Mapping[str, str] = os.environ) -> Path:
    return default_cache_dir(environ) / "audit.jsonl"


def scratch_parent() -> Path | None:
    """A RAM-backed folder for staging frames when the system has one (``/dev/shm``), else None."""
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else None
