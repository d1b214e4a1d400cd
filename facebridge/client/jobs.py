"""What the client asks of a server and what comes back, frame by frame: plain records without gRPC.

Kept apart from :mod:`.grpc_client` (which re-exports them) so that ``facebridge process`` can plan its frames
and start its private server before it imports gRPC and the wire modules (~0.2 s, overlapped with the
server's start).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FrameJob:
    """One frame to process: read ``input_path``, write the result to ``output_path``."""

    frame_number: int
    input_path: str
    output_path: str


@dataclass(frozen=True)
class FrameOutcome:
    frame_number: int
    status: str  # ok | warning | failed
    kind: str
    message: str
    input_path: str
    output_path: str
    faces: list[dict[str, Any]] = field(default_factory=list)  # QC dicts, as PreviewResult.faces
    timings_ms: dict[str, float] = field(default_factory=dict)
    analysed: bool = False

    @property
    def failed(self) -> bool:
        return self.status == "failed"


@dataclass(frozen=True)
class AnalyseOutcome:
    frame_number: int
    status: str  # ok | failed
    kind: str
    message: str
    cut: int
    keyframe: bool
    replayed: bool
    tracks: list[int]

    @property
    def failed(self) -> bool:
        return self.status == "failed"
