"""Digests of files remembered by the files' state as the file system states it, so a file set read on every
server start (the embedded models' weights, ~120 MB) is hashed once per change, not once per start."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol


class FileDigests(Protocol):
    """Digests recorded by the state of the files they were computed from (``store.shot_db.ShotDatabase``)."""

    def file_digest(self, signature: str) -> str | None: ...

    def remember_file_digest(self, signature: str, digest: str) -> bool: ...


def files_signature(paths: Sequence[Path]) -> str:
    """The state of ``paths`` as the file system states it (JSON: per file its resolved path, device, inode, size
    and modification and status-change times in ns). Any write to a file, or another file put in its place,
    changes it (the status-change time cannot be set back), so a digest recorded for a signature describes the
    files that have it. OSError when a file cannot be examined."""
    state = []
    for path in paths:
        st = os.stat(path)
        state.append([str(Path(path).resolve()), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns])
    return json.dumps(state, separators=(",", ":"))


def content_digest(paths: Sequence[Path]) -> str:
    """sha256 (hex) over each file's name (its last path component) then its content, in order."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(Path(path).name.encode())
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def remembered_content_digest(paths: Sequence[Path], digests: FileDigests | None) -> str:
    """:func:`content_digest` of ``paths``: the one ``digests`` recorded for their present
    :func:`files_signature`, else computed and recorded (only if the files did not change while being read)."""
    if digests is None:
        return content_digest(paths)
    signature = files_signature(paths)
    known = digests.file_digest(signature)
    if known is not None:
        return known
    digest = content_digest(paths)
    if files_signature(paths) == signature:
        digests.remember_file_digest(signature, digest)
    return digest
