"""Shot-analysis files (format: :mod:`facebridge.analysis_file`) to and from the shot database.

``export_analysis`` writes what the database holds for a shot; ``parse_analysis`` validates a file in full
(every field's type, size and range, finite numbers, track references) before ``ShotDatabase.import_shot``
writes anything, so a hostile file can neither crash the server nor leave half an analysis behind. The
values travel exactly: landmarks and embeddings as their float32 bytes, rects and scores as float64 JSON
numbers (shortest round-trip form), so a shot rendered from an imported analysis gives the same pixels.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from facebridge import analysis_file as fmt

from .. import __version__
from .shot_db import Observation, ShotDatabase

EMBEDDING_SIZE = 128
MAX_FACES_PER_FRAME = 1024
MAX_SHOT_CHARS = 1024
_HEX64 = re.compile(r"[0-9a-f]{64}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}")  # a detector name, a model id (name@sha256[:16])
_FRAME_LIMIT = 2**62


class AnalysisInvalid(ValueError):
    """A shot-analysis file that cannot be imported; one line naming the cause."""


@dataclass(frozen=True)
class FrameRecord:
    frame: int
    content_hash: str
    cut: int
    keyframe: bool
    observations: tuple[Observation, ...]


@dataclass(frozen=True)
class ShotAnalysisData:
    """A validated shot analysis, ready for ``ShotDatabase.import_shot``."""

    shot: str
    analyser: str
    settings: dict[str, object]
    frames: tuple[FrameRecord, ...]
    tracks: dict[int, tuple[int, np.ndarray]]  # track -> (cut, (128,) float32 embedding)
    sha256: str


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array, "<f4").tobytes()).decode("ascii")


def export_analysis(db: ShotDatabase, shot: str, analyser: str) -> bytes | None:
    """The shot-analysis file of ``shot`` as the database holds it (None when the shot is unknown)."""
    config = db.shot_config(shot)
    if config is None:
        return None
    keyframes = set(db.keyframes(shot))
    by_frame: dict[int, list[Observation]] = {}
    for obs in db.observations(shot):
        by_frame.setdefault(obs.frame, []).append(obs)
    frames = []
    for frame, (content_hash, cut) in sorted(db.analysed_frames(shot).items()):
        faces = [{"track": o.track, "landmarks": _b64(o.landmarks), "rect": [float(v) for v in o.rect],
                  "score": float(o.score), "origin": o.origin}
                 for o in sorted(by_frame.get(frame, []), key=lambda o: o.track)]
        frames.append({"frame": frame, "content_hash": content_hash, "cut": cut, "keyframe": frame in keyframes,
                       "faces": faces})
    tracks = [{"track": t, "cut": c, "embedding": _b64(e)} for t, (c, e) in sorted(db.tracks(shot).items())]
    return fmt.encode({"facebridge_version": __version__, "shot": shot, "analyser": analyser,
                       "analysis_settings": config, "encoding": fmt.ENCODING, "frames": frames, "tracks": tracks})


# -- validation -----------------------------------------------------------------------------------------
def _int(value: object, what: str, low: int = -_FRAME_LIMIT, high: int = _FRAME_LIMIT) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise AnalysisInvalid(f"{what} must be a whole number in [{low}, {high}]")
    return value


def _float(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise AnalysisInvalid(f"{what} must be a finite number")
    return float(value)


def _floats(text: object, count: int, what: str) -> np.ndarray:
    if not isinstance(text, str) or len(text) > 4 * count * 2:
        raise AnalysisInvalid(f"{what} must be base64 of {count} float32")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise AnalysisInvalid(f"{what} is not valid base64") from None
    if len(raw) != 4 * count:
        raise AnalysisInvalid(f"{what} holds {len(raw)} bytes, not {4 * count} ({count} float32)")
    values = np.frombuffer(raw, "<f4").astype(np.float32)
    if not np.isfinite(values).all():
        raise AnalysisInvalid(f"{what} holds a value that is not finite")
    return values


def _fields(entry: object, required: tuple[str, ...], what: str) -> Mapping[str, Any]:
    if not isinstance(entry, dict):
        raise AnalysisInvalid(f"{what} must be an object")
    missing = [k for k in required if k not in entry]
    if missing:
        raise AnalysisInvalid(f"{what} lacks {', '.join(missing)}")
    return entry


def _settings(value: object, expected: Mapping[str, object]) -> dict[str, object]:
    """The analysis settings: exactly ``expected``'s names, each of the same type."""
    if not isinstance(value, dict) or set(value) != set(expected):
        raise AnalysisInvalid(f"analysis_settings must name exactly {', '.join(sorted(expected))}")
    settings: dict[str, object] = {}
    for name, default in expected.items():
        if isinstance(default, str):
            text = value[name]
            if not isinstance(text, str) or not _NAME.fullmatch(text):
                raise AnalysisInvalid(f"analysis_settings.{name} must be a model id")
            settings[name] = text
        elif isinstance(default, int) and not isinstance(default, bool):
            settings[name] = _int(value[name], f"analysis_settings.{name}", 0, 2**31)
        else:
            settings[name] = _float(value[name], f"analysis_settings.{name}")
    return settings


def parse_analysis(data: bytes | bytearray, expected_settings: Mapping[str, object]) -> ShotAnalysisData:
    """Validate a shot-analysis file in full.

    Args:
        expected_settings: the analysis settings' names and default values (their types are checked).

    Raises:
        AnalysisInvalid: one line naming what is wrong.
    """
    try:
        document = fmt.decode(data)
    except fmt.AnalysisFileError as exc:
        raise AnalysisInvalid(str(exc)) from None
    doc = _fields(document, ("shot", "analyser", "analysis_settings", "frames", "tracks", "sha256"), "the file")
    shot, analyser = doc["shot"], doc["analyser"]
    if not isinstance(shot, str) or not 0 < len(shot) <= MAX_SHOT_CHARS:
        raise AnalysisInvalid(f"shot must be a name of 1 to {MAX_SHOT_CHARS} characters")
    if not isinstance(analyser, str) or len(analyser) > 256:
        raise AnalysisInvalid("analyser must be a short name")
    settings = _settings(doc["analysis_settings"], expected_settings)
    if not isinstance(doc["tracks"], list):
        raise AnalysisInvalid("tracks must be a list")
    tracks: dict[int, tuple[int, np.ndarray]] = {}
    for i, entry in enumerate(doc["tracks"]):
        e = _fields(entry, ("track", "cut", "embedding"), f"tracks[{i}]")
        track = _int(e["track"], f"tracks[{i}].track", 0, 2**31)
        if track in tracks:
            raise AnalysisInvalid(f"track {track} is listed twice")
        tracks[track] = (_int(e["cut"], f"track {track}'s cut", 0, 2**31),
                         _floats(e["embedding"], EMBEDDING_SIZE, f"track {track}'s embedding"))
    if not isinstance(doc["frames"], list):
        raise AnalysisInvalid("frames must be a list")
    frames: list[FrameRecord] = []
    for i, entry in enumerate(doc["frames"]):
        e = _fields(entry, ("frame", "content_hash", "cut", "keyframe", "faces"), f"frames[{i}]")
        frame = _int(e["frame"], f"frames[{i}].frame")
        if frames and frame <= frames[-1].frame:
            raise AnalysisInvalid(f"frame {frame} comes after frame {frames[-1].frame} (frames must increase)")
        content_hash = e["content_hash"]
        if not isinstance(content_hash, str) or not _HEX64.fullmatch(content_hash):
            raise AnalysisInvalid(f"frame {frame}'s content_hash must be 64 lowercase hex digits")
        cut = _int(e["cut"], f"frame {frame}'s cut", 0, 2**31)
        if not isinstance(e["keyframe"], bool):
            raise AnalysisInvalid(f"frame {frame}'s keyframe must be true or false")
        faces = e["faces"]
        if not isinstance(faces, list) or len(faces) > MAX_FACES_PER_FRAME:
            raise AnalysisInvalid(f"frame {frame}'s faces must be a list of at most {MAX_FACES_PER_FRAME}")
        observations: list[Observation] = []
        for j, face in enumerate(faces):
            where = f"frame {frame}'s faces[{j}]"
            f = _fields(face, ("track", "landmarks", "rect", "score", "origin"), where)
            track = _int(f["track"], f"{where}.track", 0, 2**31)
            if track not in tracks:
                raise AnalysisInvalid(f"{where} names track {track}, which the file does not list")
            if any(o.track == track for o in observations):
                raise AnalysisInvalid(f"{where}: track {track} appears twice on the frame")
            rect = f["rect"]
            if not isinstance(rect, list) or len(rect) != 4:
                raise AnalysisInvalid(f"{where}.rect must be four numbers")
            x0, y0, x1, y1 = (_float(v, f"{where}.rect") for v in rect)
            if not isinstance(f["origin"], str) or not _NAME.fullmatch(f["origin"]):
                raise AnalysisInvalid(f"{where}.origin must be detect, cnn, track or a detector's name")
            observations.append(Observation(frame, track, _floats(f["landmarks"], 136, f"{where}.landmarks")
                                            .reshape(68, 2), _float(f["score"], f"{where}.score"),
                                            str(f["origin"]), (x0, y0, x1, y1)))
        frames.append(FrameRecord(frame, content_hash, cut, e["keyframe"], tuple(observations)))
    return ShotAnalysisData(shot, analyser, settings, tuple(frames), tracks, str(doc["sha256"]))
