"""Open sessions: one per shot and client, holding the prepared sources and the parameters."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field, replace

import numpy as np
from facebridge.schema import SettingError
from facebridge.settings import RenderParams

from ..faces.finder import FaceFinder
from ..pipeline.stages import Stage
from ..swap import CompositeControls, SourceFace
from ..temporal.analyse import AnalyseConfig
from .errors import InvalidRequest, ServerBusy, SessionNotFound

OUTPUT_FORMATS = ("exr", "tif", "tiff", "png", "dpx", "jpg", "jpeg")


@dataclass(frozen=True)
class SessionParams(RenderParams):
    """The parameters of a session: the schema's settings plus two wire-only ones; together with the sources
    and models they decide every pixel.

    ``face`` is ``all``, ``track:N`` or ``ref`` (the session's reference identity).
    """

    output_format: str = "exr"
    quality_checks: bool = True

    def controls(self) -> CompositeControls:
        return CompositeControls(blend=self.blend, regions=tuple(sorted(self.regions.items())), feather=self.feather,
                                 erode=self.erode, grain=self.grain, colour_match=self.colour_match)

    def analyse_config(self, detector_id: str = "", landmarker_id: str = "") -> AnalyseConfig:
        """The analysis settings; ``detector_id``/``landmarker_id``: the chosen models' ids ("" for dlib's)."""
        return AnalyseConfig(keyframe_interval=self.keyframe_interval, detector=detector_id, landmarker=landmarker_id)

    def validated(self) -> "SessionParams":
        """Checked against the schema (the client checked the same; a server never trusts it); InvalidRequest
        with the schema's one-line message otherwise."""
        try:
            params = super().validated()
        except SettingError as exc:
            raise InvalidRequest(str(exc)) from exc
        fmt = (self.output_format or "exr").lower().lstrip(".")
        if fmt not in OUTPUT_FORMATS:
            raise InvalidRequest(f"output format '{fmt}' is not supported (supported: {', '.join(OUTPUT_FORMATS)})")
        face = "ref" if params.face.startswith("ref:") else params.face  # the reference travels as an image
        return replace(params, output_format=fmt, face=face)


@dataclass
class Session:
    id: str
    client: str
    shot: str
    params: SessionParams
    sources: list[SourceFace]
    source_hashes: list[str]
    params_hash: str
    model_ids: list[str]
    created: float = field(default_factory=time.time)
    face_reference: np.ndarray | None = None  # (128,) identity picked by face = "ref"
    stage: Stage | None = None                # the model stage (None: the embedded classical swap)
    notes: tuple[str, ...] = ()               # about the models chosen (reports)
    frames_processed: int = 0
    frames_failed: int = 0
    peer: str = ""                            # who opened it (the per-peer cap counts by this)
    last_used: float = field(default_factory=time.monotonic)
    streams: int = 0                          # streams using it now (a busy session never expires)
    analysis_imported: bool = False           # its shot's analysis came from a file: AnalyseShot only replays
    finder: FaceFinder | None = None          # detector + landmarker (None: the engine's dlib models)
    finder_ids: tuple[str, str] = ("", "")    # the chosen detector's and landmarker's ids ("": dlib's default)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    analysis_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, failed: bool) -> None:
        with self._lock:
            self.frames_processed += 1
            self.frames_failed += int(failed)
            self.last_used = time.monotonic()

    def touch(self) -> None:
        with self._lock:
            self.last_used = time.monotonic()

    def stream_started(self) -> None:
        with self._lock:
            self.streams += 1
            self.last_used = time.monotonic()

    def stream_ended(self) -> None:
        with self._lock:
            self.streams -= 1
            self.last_used = time.monotonic()

    def idle_for(self, now: float) -> float:
        """Seconds since the session was last used (0 while a stream uses it)."""
        with self._lock:
            return 0.0 if self.streams > 0 else now - self.last_used


class SessionRegistry:
    """Thread-safe map of open sessions, bounded in all and per peer; unused sessions expire.

    Args:
        max_sessions: open sessions at once.
        max_per_peer: open sessions per peer (``Session.peer``), so one client cannot take them all.
        idle_s: a session unused this long (no call, no stream) is closed by ``expire_idle``.
    """

    def __init__(self, max_sessions: int = 64, max_per_peer: int | None = None, idle_s: float = 3600.0) -> None:
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._max = max_sessions
        self._max_per_peer = max_sessions if max_per_peer is None else max_per_peer
        self.idle_s = idle_s

    @staticmethod
    def new_id() -> str:
        return uuid.uuid4().hex

    def add(self, session: Session) -> None:
        with self._lock:
            if len(self._sessions) >= self._max:
                raise ServerBusy(f"{self._max} sessions are open on this server; close one first "
                                 f"(unused sessions close after {self.idle_s:g} s)")
            mine = sum(1 for s in self._sessions.values() if s.peer == session.peer)
            if mine >= self._max_per_peer:
                raise ServerBusy(f"{mine} sessions are open from {session.peer or 'this client'} (the limit per "
                                 f"client); close one first (unused sessions close after {self.idle_s:g} s)")
            self._sessions[session.id] = session

    def _not_found(self, session_id: str) -> SessionNotFound:
        return SessionNotFound(f"no open session '{session_id}' (closed, expired after {self.idle_s:g} s unused, "
                               "or the server restarted)")

    def get(self, session_id: str) -> Session:
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None:
            raise self._not_found(session_id)
        session.touch()
        return session

    def expire_idle(self, now: float | None = None) -> list[Session]:
        """Close the sessions unused for ``idle_s`` seconds and return them."""
        now = time.monotonic() if now is None else now
        with self._lock:
            expired = [s for s in self._sessions.values() if s.idle_for(now) > self.idle_s]
            for session in expired:
                del self._sessions[session.id]
        return expired

    def remove(self, session_id: str) -> Session:
        with self._lock:
            session = self._sessions.pop(session_id, None)
        if session is None:
            raise self._not_found(session_id)
        return session

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)


def session_analyse_config(session: Session) -> AnalyseConfig:
    """The analysis settings of ``session``, with its chosen detector and landmarker."""
    return session.params.analyse_config(*session.finder_ids)
