"""Open sessions: one per shot and client, holding the prepared sources and the parameters."""

from __future__ import annotations

import math
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from ..pipeline.stages import Stage
from ..swap import CompositeControls, SourceFace
from ..temporal.analyse import AnalyseConfig
from .errors import InvalidRequest, ServerBusy, SessionNotFound

OUTPUT_FORMATS = ("exr", "tif", "tiff", "png", "dpx", "jpg", "jpeg")
MODES = ("swap", "restore", "swap+restore")
PRECISIONS = ("fp32", "fp16", "bf16")


@dataclass(frozen=True)
class SessionParams:
    """The parameters of a session; together with the sources and models they decide every pixel."""

    mode: str = "swap"
    blend: float = 1.0
    colorspace: str = ""
    output_format: str = "exr"
    regions: tuple[tuple[str, float], ...] = ()
    feather: float = 0.0
    erode: float = 0.0
    grain: float = 0.0
    colour_match: str = "mean-std"
    smoothing: float = 2.0
    keyframe_interval: int = 8
    face: str = "all"
    quality_checks: bool = True
    stabilise: float = 1.0
    flow_threshold: float = 0.04
    swapper: str = ""
    restorer: str = ""
    parser: str = ""
    allow_unverified: bool = False
    precision: str = "fp32"

    def controls(self) -> CompositeControls:
        return CompositeControls(blend=self.blend, regions=self.regions, feather=self.feather, erode=self.erode,
                                 grain=self.grain, colour_match=self.colour_match)

    def analyse_config(self) -> AnalyseConfig:
        return AnalyseConfig(keyframe_interval=self.keyframe_interval)

    def validated(self) -> "SessionParams":
        mode = self.mode or "swap"
        if mode not in MODES:
            raise InvalidRequest(f"mode '{mode}' is not available (available: {', '.join(MODES)})")
        if (self.precision or "fp32") not in PRECISIONS:
            raise InvalidRequest(f"precision '{self.precision}' (expected {', '.join(PRECISIONS)})")
        if not (math.isfinite(self.blend) and 0.0 <= self.blend <= 1.0):
            raise InvalidRequest(f"blend must be within 0..1, got {self.blend}")
        fmt = (self.output_format or "exr").lower().lstrip(".")
        if fmt not in OUTPUT_FORMATS:
            raise InvalidRequest(f"output format '{fmt}' is not supported (supported: {', '.join(OUTPUT_FORMATS)})")
        if not (math.isfinite(self.smoothing) and self.smoothing >= 0.0):
            raise InvalidRequest(f"smoothing must be a number >= 0 (frames), got {self.smoothing}")
        if not (math.isfinite(self.stabilise) and 0.0 <= self.stabilise <= 4.0):
            raise InvalidRequest(f"stabilise must be within 0..4, got {self.stabilise}")
        if not (math.isfinite(self.flow_threshold) and 0.0 < self.flow_threshold <= 1.0):
            raise InvalidRequest(f"flow threshold must be within (0, 1], got {self.flow_threshold}")
        if self.keyframe_interval < 1:
            raise InvalidRequest(f"keyframe interval must be at least 1, got {self.keyframe_interval}")
        face = (self.face or "all").strip()
        if not (face == "all" or face == "ref" or (face.startswith("track:") and face[6:].isdigit())):
            raise InvalidRequest(f"face selection '{face}': expected all, track:N or ref")
        params = replace(self, mode=mode, blend=float(self.blend), output_format=fmt, face=face,
                         precision=self.precision or "fp32",
                         colour_match=self.colour_match or "mean-std",
                         regions=tuple(sorted((name, float(w)) for name, w in self.regions)))
        try:
            params.controls().validated()
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from exc
        return params

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


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
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    analysis_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, failed: bool) -> None:
        with self._lock:
            self.frames_processed += 1
            self.frames_failed += int(failed)


class SessionRegistry:
    """Thread-safe map of open sessions with an upper bound on how many may be open."""

    def __init__(self, max_sessions: int = 64) -> None:
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._max = max_sessions

    @staticmethod
    def new_id() -> str:
        return uuid.uuid4().hex

    def add(self, session: Session) -> None:
        with self._lock:
            if len(self._sessions) >= self._max:
                raise ServerBusy(f"{self._max} sessions are open; close one first")
            self._sessions[session.id] = session

    def get(self, session_id: str) -> Session:
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None:
            raise SessionNotFound(f"no open session '{session_id}'")
        return session

    def remove(self, session_id: str) -> Session:
        with self._lock:
            session = self._sessions.pop(session_id, None)
        if session is None:
            raise SessionNotFound(f"no open session '{session_id}'")
        return session

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)
