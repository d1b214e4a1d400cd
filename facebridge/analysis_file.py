"""The portable shot-analysis file: what ``facebridge analyse --analysis-out`` writes and ``facebridge process
--analysis`` reads, so that a farm renders chunks of a shot from one analysis without sharing a database.

One UTF-8 JSON object (standard library only here: the client checks a file before any server starts, the
server validates it in full with :mod:`inference_server.store.analysis_file`)::

    {"format": "facebridge-shot-analysis", "format_version": 3, "facebridge_version": "0.1.0",
     "shot": "sh010", "analyser": "dlib-hog+sp68+resnet-v1",
     "analysis_settings": {"keyframe_interval": 8, ...},        # every setting that decides the analysis
     "encoding": {...},                                         # how the fields below are encoded, in words
     "frames": [{"frame": 1001, "content_hash": "<sha256 hex>", "cut": 0, "keyframe": true,
                 "faces": [{"track": 0, "landmarks": "<base64>", "rect": [x0, y0, x1, y1],
                            "score": 1.31, "origin": "detect"}]}, ...],
     "tracks": [{"track": 0, "cut": 0, "embedding": "<base64>"}, ...],
     "sha256": "<hex>"}

``sha256`` is the sha256 of the canonical serialisation of every other field (``json.dumps(...,
sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)``, UTF-8), so a file changed or
cut short by accident is refused. The file itself is written in that canonical form plus ``sha256`` (and a
newline): the same analysis always gives the same bytes. Frames are in increasing order; there is no time
stamp, so exporting an imported analysis gives the file back byte for byte.

Version 2 (issue 16): a face's ``origin`` may also be ``cnn`` (found on a keyframe by dlib's CNN detector, the
fallback where HOG found fewer faces than expected); ``detect`` is HOG. Version 3 (issue 16): ``origin`` may be
the registry name of a detector chosen from the models folder (``scrfd_2.5g``, ...), and ``analysis_settings``
then names the chosen ``detector`` and/or ``landmarker`` (model ids, strings). Versions 1 and 2 are still read.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

from .files import write_atomic

FORMAT = "facebridge-shot-analysis"
VERSION = 3
SUFFIX = ".fbanalysis"
MAX_BYTES = 256 * 1024 * 1024
"""The largest shot-analysis file read or accepted (a 10 000-frame shot with four faces is about 40 MB)."""
ENCODING = {
    "content_hash": "sha256 hex of the frame's R, G, B values as little-endian float32, row-major (H, W, 3), "
                    "data window",
    "landmarks": "base64 of (68, 2) little-endian float32, x/y in data-window pixels (dlib 68-point order)",
    "rect": "x0, y0, x1, y1 float64 in data-window pixels: the detector box the landmarks were fitted in",
    "embedding": "base64 of (128,) little-endian float32: the track's identity embedding (analyser's)",
    "cut": "index of the scene cut the frame belongs to, from 0",
    "origin": "detect (found on a keyframe by the HOG detector) | cnn (found on a keyframe by the CNN fallback "
              "detector) | track (followed by optical flow) | the registry name of the neural detector that found "
              "it on a keyframe",
}


class AnalysisFileError(ValueError):
    """A shot-analysis file that cannot be used; the message is one line (without the file's name)."""


def _canonical(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def encode(document: dict[str, Any]) -> bytes:
    """The file's bytes for ``document`` (every field but ``sha256``, which is added)."""
    body = {k: v for k, v in document.items() if k != "sha256"}
    body["format"], body["format_version"] = FORMAT, VERSION
    digest = hashlib.sha256(_canonical(body)).hexdigest()
    return _canonical({**body, "sha256": digest}) + b"\n"


def _no_constant(name: str) -> object:
    raise AnalysisFileError(f"not a shot-analysis file: it holds {name}, which JSON does not allow")


def decode(data: bytes | bytearray) -> dict[str, Any]:
    """The document of a shot-analysis file, with its format, version and checksum checked (the fields'
    contents are the reader's to check).

    Raises:
        AnalysisFileError: not JSON, not this format, a newer version, or a checksum that does not match.
    """
    if len(data) > MAX_BYTES:
        raise AnalysisFileError(f"{len(data)} bytes, more than the {MAX_BYTES} a shot-analysis file may have")
    try:
        document = json.loads(bytes(data).decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        if isinstance(exc, AnalysisFileError):
            raise
        raise AnalysisFileError(f"not a shot-analysis file (not JSON: {str(exc).splitlines()[0][:120]})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise AnalysisFileError(f"not a shot-analysis file (no \"format\": \"{FORMAT}\")")
    version = document.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise AnalysisFileError("not a shot-analysis file (no valid format_version)")
    if version > VERSION:
        raise AnalysisFileError(f"format version {version} was written by a newer facebridge "
                                f"(this one reads version {VERSION})")
    claimed = document.get("sha256")
    body = {k: v for k, v in document.items() if k != "sha256"}
    try:
        actual = hashlib.sha256(_canonical(body)).hexdigest()
    except ValueError:
        raise AnalysisFileError("not a shot-analysis file (it holds a value JSON does not allow)") from None
    if claimed != actual:
        raise AnalysisFileError("its checksum does not match its contents (changed or damaged since it was "
                                "written)")
    return document


@dataclass(frozen=True)
class AnalysisFile:
    """A shot-analysis file as the client sees it: its bytes, and what is checked before a server starts."""

    path: str
    data: bytes
    shot: str
    frames: dict[int, str]  # frame -> content hash
    settings: dict[str, Any]
    sha256: str


def _int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def summarise(document: dict[str, Any], path: str, data: bytes) -> AnalysisFile:
    """The shot, frames and settings of a decoded document (AnalysisFileError when they are malformed)."""
    shot = document.get("shot")
    if not isinstance(shot, str) or not shot:
        raise AnalysisFileError("it names no shot")
    settings = document.get("analysis_settings")
    if not isinstance(settings, dict) or not _int(settings.get("keyframe_interval")):
        raise AnalysisFileError("its analysis_settings are missing or malformed")
    frames: dict[int, str] = {}
    entries = document.get("frames")
    if not isinstance(entries, list):
        raise AnalysisFileError("its frames are missing")
    for entry in entries:
        if not isinstance(entry, dict) or not _int(entry.get("frame")) or not isinstance(entry.get("content_hash"), str):
            raise AnalysisFileError("a frame entry is malformed")
        frames[entry["frame"]] = entry["content_hash"]
    return AnalysisFile(path, data, shot, frames, dict(settings), str(document.get("sha256", "")))


def read(path: str | os.PathLike[str]) -> AnalysisFile:
    """Read and check a shot-analysis file (AnalysisFileError with the cause: missing, unreadable, corrupt)."""
    try:
        size = os.stat(path).st_size
        if size > MAX_BYTES:
            raise AnalysisFileError(f"{size} bytes, more than the {MAX_BYTES} a shot-analysis file may have")
        with open(path, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise AnalysisFileError("no such file") from None
    except OSError as exc:
        raise AnalysisFileError(f"cannot read it ({exc.strerror or exc})") from None
    return summarise(decode(data), os.fspath(path), data)


def write_readonly(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` atomically and read-only (0444), flushed to disk (farm machines read it); an earlier file
    is replaced (the folder's permission decides, not the old file's mode)."""
    write_atomic(path, data, mode=0o444, durable=True)
