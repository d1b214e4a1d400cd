"""One frame of a shot's analysis in the three steps :mod:`.analysis_stream` overlaps: ``prepare`` (decode the
plate, its content hash and, for a frame the analyser does not hold with that content, its display proxy),
``analyse`` (the shot analyser) and ``store`` (the plate crops around the faces found, for the renders'
stabilisation). A step that fails the frame gives its failed result, naming file, frame and cause.

A frame that replays needs no display proxy; one that was expected to replay but is analysed new after all (an
earlier frame's changed plate truncated the analysis there), or whose proxy the next new frame compares with, has it
made by the analyser when it needs it, from the same plate, so the same bits. A frame whose file this shot database
has seen decoded (by its sha256, :meth:`FrameLoader.known_facts`) and that replays is not even decoded: its content
hash is known, and its pixels are decoded only if a step asks for them after all (a plate crop to store again, a proxy).

The analysis decodes only a plate's R, G and B (:meth:`FrameLoader.decode_rgb`: its other channels are never
looked at here): ``(H, W, 3)`` float32 scene-linear; the proxy ``(H, W, 3)`` uint8 sRGB.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..pipeline.timing import Stopwatch
from ..plates.colour import ColourSpace, plate_colourspace
from ..plates.errors import PlateError
from ..plates.image_file import channel_selection
from ..temporal.analyse import FrameAnalysis, NotInAnalysis, ShotAnalyser
from .frame_io import EncodedFrame, FrameLoader, FrameRequest
from .shot_targets import ShotTargets


@dataclass(frozen=True)
class AnalyseResultData:
    frame_number: int
    status: str  # ok | failed
    kind: str = ""
    message: str = ""
    cut: int = 0
    keyframe: bool = False
    replayed: bool = False
    tracks: tuple[int, ...] = ()
    timings_ms: dict[str, float] = field(default_factory=dict)


class DecodedOnce:
    """A frame's ``(H, W, 3)`` float32 R, G, B: given, or decoded the first time they are asked for (once, from any
    thread; a decoding error is raised to each caller, and the next one tries again)."""

    def __init__(self, decode: Callable[[], np.ndarray]) -> None:
        self._decode: Callable[[], np.ndarray] | None = decode
        self._pixels: np.ndarray | None = None
        self._lock = threading.Lock()

    @classmethod
    def of(cls, pixels: np.ndarray) -> DecodedOnce:
        """Pixels decoded already."""
        return cls(lambda: pixels)

    def __call__(self) -> np.ndarray:
        with self._lock:
            if self._pixels is None:
                assert self._decode is not None
                self._pixels = self._decode()
                self._decode = None
            return self._pixels


@dataclass(frozen=True)
class PreparedFrame:
    """A frame ready for the analyser: its content hash, and its pixels decoded or to be decoded on demand."""

    request: FrameRequest
    plate: DecodedOnce   # (H, W, 3) float32 R, G, B of the plate
    size: tuple[int, int]  # (H, W)
    rgb_index: list[int]  # of R, G, B in ``plate``: [0, 1, 2], as it holds them only
    colourspace: ColourSpace
    proxy: np.ndarray | None  # (H, W, 3) uint8 display proxy; None: not made (the frame was expected to replay)
    frame_hash: str
    timings_ms: dict[str, float]

    @property
    def pixels(self) -> np.ndarray:
        return self.plate()

    def display_proxy(self) -> np.ndarray:
        """The ``(H, W, 3)`` uint8 display proxy: the one made, else made now (not kept)."""
        return self.proxy if self.proxy is not None else display_proxy(self.pixels, self.rgb_index, self.colourspace)


PROXY_ROWS = 64  # rows of a linear plate made into the proxy at a time (1080p: 1.5 MB of RGB, in the caches)


def display_proxy(pixels: np.ndarray, rgb_index: list[int], colourspace: ColourSpace) -> np.ndarray:
    """The ``(H, W, 3)`` uint8 sRGB display proxy of an ``(H, W, C)`` float32 plate in ``colourspace``.

    A linear Rec.709 plate's proxy is made ``PROXY_ROWS`` rows at a time: the same per-value operations as on the
    whole frame (so the same bytes), on blocks that stay in the CPU's caches instead of a frame's 25 MB
    intermediates (1080p: 82 -> 57 ms). Other colour spaces go through OCIO on the whole frame."""
    if not colourspace.is_linear_rec709:
        return np.ascontiguousarray(colourspace.to_proxy8(pixels[..., rgb_index]))
    proxy = np.empty(pixels.shape[:2] + (3,), np.uint8)
    channels = channel_selection(rgb_index)  # a view where it can be: the conversion copies anyway
    for top in range(0, pixels.shape[0], PROXY_ROWS):
        proxy[top:top + PROXY_ROWS] = colourspace.to_proxy8(pixels[top:top + PROXY_ROWS, :, channels])
    return proxy


@dataclass(frozen=True)
class AnalysedFrame:
    """A frame the analyser has committed; its plate crops are still to be stored."""

    prepared: PreparedFrame
    analysis: FrameAnalysis
    timings_ms: dict[str, float]


def failed_analysis(request: FrameRequest, exc: PlateError | ValueError) -> AnalyseResultData:
    """The failed result of a frame a step could not analyse: a plate problem (its kind), a plate that differs
    from an imported analysis (``analysis``) or a frame out of order (``order``)."""
    kind = exc.kind if isinstance(exc, PlateError) else "analysis" if isinstance(exc, NotInAnalysis) else "order"
    return AnalyseResultData(request.frame_number, "failed", kind,
                             f"{request.name} (frame {request.frame_number}): {exc}")


class FrameAnalysisSteps:
    """The steps of one AnalyseShot stream's frames.

    Args:
        frames: reads and decodes the frames and remembers their content hashes.
        shots: where the plate crops go.
        analyser: the stream's shot analyser (frames in increasing order).
        colorspace: the session's colorspace override ("": the file's, else linear Rec.709).
        on_new_frame: called each time a frame is analysed new rather than replayed (the engine then warms the
            render's lazy imports, which a re-render of a replayed shot from cached model outputs never needs).
    """

    def __init__(self, frames: FrameLoader, shots: ShotTargets, analyser: ShotAnalyser, colorspace: str,
                 on_new_frame: Callable[[], object] = lambda: None) -> None:
        self.frames = frames
        self.shots = shots
        self.analyser = analyser
        self.colorspace = colorspace
        self.on_new_frame = on_new_frame

    def prepare(self, request: FrameRequest) -> PreparedFrame | AnalyseResultData:
        """Read the frame, its content hash and, unless the analyser holds the frame with this content (it
        will replay), its display proxy (independent of the other frames: any thread). A replaying frame whose
        file is known by its digest is not decoded here (see the module docstring)."""
        clock = Stopwatch()
        try:
            encoded = self.frames.read(request)
            facts = self.frames.known_facts(encoded.digest)
            if facts is not None and self.analyser.is_known(request.frame_number, facts.content_hash):
                plate, replays = DecodedOnce(lambda: self._decode(encoded)), True
            else:
                decoded = self.frames.decode_rgb(encoded)
                facts = self.frames.facts(decoded, encoded.digest)
                plate = DecodedOnce.of(decoded.rgb)
                replays = self.analyser.is_known(request.frame_number, facts.content_hash)
            clock.lap("decode")
            rgb_index = [0, 1, 2]  # the plate holds R, G, B only
            colourspace = plate_colourspace(self.colorspace, facts.colorspace)
            proxy = None if replays else display_proxy(plate(), rgb_index, colourspace)
            clock.lap("proxy")
        except (PlateError, ValueError) as exc:
            return failed_analysis(request, exc)
        return PreparedFrame(request, plate, facts.size, rgb_index, colourspace, proxy, facts.content_hash,
                             clock.timings)

    def _decode(self, encoded: EncodedFrame) -> np.ndarray:
        """The R, G, B of a frame whose file was known: decoded now that a step needs them after all."""
        return self.frames.decode_rgb(encoded).rgb

    def analyse(self, prepared: PreparedFrame) -> AnalysedFrame | AnalyseResultData:
        """Analyse (or replay) the frame: the analyser commits it to the shot database."""
        clock = Stopwatch()
        try:
            analysis = self.analyser.analyse(prepared.request.frame_number, prepared.display_proxy,
                                             prepared.frame_hash)
        except (PlateError, ValueError) as exc:
            return failed_analysis(prepared.request, exc)
        if not analysis.replayed:
            self.on_new_frame()
        clock.lap("analyse")
        return AnalysedFrame(prepared, analysis, {**prepared.timings_ms, **clock.timings})

    def store(self, analysed: AnalysedFrame) -> AnalyseResultData:
        """Store the plate around each face found; the frame's result."""
        prepared, analysis = analysed.prepared, analysed.analysis
        clock = Stopwatch()
        try:
            self.shots.store_plate_crops(prepared.plate, prepared.size, prepared.rgb_index, prepared.frame_hash,
                                         [obs.landmarks for obs in analysis.observations])
        except (PlateError, ValueError) as exc:
            return failed_analysis(prepared.request, exc)
        clock.lap("store")
        return AnalyseResultData(prepared.request.frame_number, "ok", cut=analysis.cut, keyframe=analysis.keyframe,
                                 replayed=analysis.replayed, tracks=tuple(o.track for o in analysis.observations),
                                 timings_ms={**analysed.timings_ms, **clock.timings})
