"""The engine behind the gRPC service: sessions of prepared sources, and frames through the face pipeline.

It knows nothing about gRPC; ``service.py`` translates messages to the calls here and errors back.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import swap as swap_module
from ..faces.dlib_models import DlibFaceModels
from ..pipeline.swap_frame import FaceReport, SwapSettings, swap_plate
from ..plates.colour import plate_colourspace, srgb_encode, to_uint8
from ..plates.errors import PlateError
from ..plates.image_file import Limits, Plate, decode_plate, encode_plate, read_plate, write_plate_atomic
from ..provenance import output_metadata, params_hash, sha256_hex
from .errors import InvalidRequest, SourceError
from .sessions import Session, SessionParams, SessionRegistry

_LOG = logging.getLogger(__name__)

LINEAR_FORMATS = ("openexr", "hdr", "rla")


@dataclass(frozen=True)
class FrameRequest:
    """One frame to process: encoded bytes (stream transport) or an input/output path pair."""

    frame_number: int
    name: str
    data: bytes | bytearray | None = None
    input_path: str = ""
    output_path: str = ""


@dataclass(frozen=True)
class FrameResultData:
    frame_number: int
    status: str  # ok | warning | failed
    kind: str = ""
    message: str = ""
    faces: tuple[FaceReport, ...] = ()
    timings_ms: dict[str, float] = field(default_factory=dict)
    output: bytes | None = None
    output_path: str = ""

    @property
    def failed(self) -> bool:
        return self.status == "failed"


def source_rgb8(plate: Plate) -> np.ndarray:
    """Display-referred ``(H, W, 3)`` uint8 view of a source photo (grey replicated, EXR treated as linear)."""
    names = plate.channel_names
    if all(c in names for c in "RGB"):
        rgb = plate.pixels[..., plate.channel_index(("R", "G", "B"))]
    elif plate.pixels.shape[2] in (1, 2):
        rgb = np.repeat(plate.pixels[..., :1], 3, axis=2)
    else:
        raise PlateError("channels", f"no R,G,B channels (has {','.join(names)})")
    if plate.format_name.lower() in LINEAR_FORMATS:
        rgb = srgb_encode(rgb)
    return np.ascontiguousarray(to_uint8(rgb))


class FaceSwapEngine:
    """Holds the loaded models, the open sessions and a scratch folder; processes frames.

    Args:
        scratch_dir: where encoded frames are staged for OpenImageIO (a RAM-backed folder is best).
        limits: the largest frames accepted.
        models: preloaded models (tests share one instance); loaded on first use otherwise.
    """

    def __init__(
        self,
        scratch_dir: Path,
        limits: Limits = Limits(),
        models: DlibFaceModels | None = None,
        max_sessions: int = 64,
        max_frame_bytes: int = 2 * 1024**3,
    ) -> None:
        self.scratch_dir = Path(scratch_dir)
        self.max_frame_bytes = max_frame_bytes
        self.limits = limits
        self.sessions = SessionRegistry(max_sessions)
        self._models = models
        self._models_lock = threading.Lock()

    @property
    def models(self) -> DlibFaceModels:
        with self._models_lock:
            if self._models is None:
                self._models = DlibFaceModels()
            return self._models

    def model_ids(self) -> list[str]:
        return [self.models.identifier, getattr(swap_module, "ALGORITHM_ID", "classical-swap")]

    def open_session(
        self, client: str, shot: str, sources: list[tuple[str, bytes]], params: SessionParams
    ) -> Session:
        """Validate parameters, decode the source images and find their faces; register the session."""
        params = params.validated()
        if params.colorspace:
            try:
                plate_colourspace(params.colorspace, None)
            except PlateError as exc:
                raise InvalidRequest(str(exc)) from exc
        if not sources:
            raise SourceError("no source image given")
        images: list[tuple[str, np.ndarray]] = []
        for label, data in sources:
            try:
                images.append((label, source_rgb8(decode_plate(data, label, self.scratch_dir, self.limits))))
            except PlateError as exc:
                raise SourceError(f"source '{label}': {exc}") from exc
        try:
            prepared = swap_module.prepare_sources(images, self.models)
        except swap_module.NoFaceError as exc:
            raise SourceError(f"source '{exc.label}': no face found") from exc
        hashes = [sha256_hex(data) for _, data in sources]
        model_ids = self.model_ids()
        session = Session(
            id=SessionRegistry.new_id(),
            client=client,
            shot=shot,
            params=params,
            sources=prepared,
            source_hashes=hashes,
            params_hash=params_hash(params.as_dict(), hashes, model_ids),
            model_ids=model_ids,
        )
        self.sessions.add(session)
        return session

    def process_frame(self, session: Session, request: FrameRequest) -> FrameResultData:
        """Process one frame; every failure becomes a failed result naming file, frame and cause."""
        where = f"{request.name} (frame {request.frame_number})"
        try:
            result = self._process(session, request)
        except PlateError as exc:
            result = FrameResultData(request.frame_number, "failed", exc.kind, f"{where}: {exc}")
        except Exception as exc:  # noqa: BLE001 - one frame's bug must not end the stream
            _LOG.exception("frame %s failed", where)
            result = FrameResultData(request.frame_number, "failed", "internal", f"{where}: internal error: {exc}")
        session.count(result.failed)
        return result

    def _process(self, session: Session, request: FrameRequest) -> FrameResultData:
        where = f"{request.name} (frame {request.frame_number})"
        started = time.perf_counter()
        if request.data is not None:
            plate = decode_plate(request.data, request.name, self.scratch_dir, self.limits)
        else:
            plate = read_plate(request.input_path, self.limits)
        decode_ms = (time.perf_counter() - started) * 1000.0
        rgb_index = plate.channel_index(("R", "G", "B"))
        settings = SwapSettings(
            blend=session.params.blend,
            colourspace=plate_colourspace(session.params.colorspace, plate.spec.get_string_attribute("oiio:ColorSpace")),
        )
        outcome = swap_plate(plate.pixels, rgb_index, session.sources, self.models, settings)
        metadata = output_metadata(session.params.mode, session.model_ids, session.params_hash, session.source_hashes)
        if outcome.faces_swapped:
            status, kind, message = "ok", "", ""
        elif outcome.faces:
            status, kind, message = "warning", "not_swapped", f"{where}: face(s) found but none could be swapped"
        else:
            status, kind, message = "warning", "no_face", f"{where}: no face found; plate passed through unchanged"
        started = time.perf_counter()
        output: bytes | None = None
        if request.data is not None:
            output = encode_plate(plate, outcome.pixels, metadata, session.params.output_format, self.scratch_dir)
        else:
            write_plate_atomic(request.output_path, plate, outcome.pixels, metadata)
        timings = {"decode": decode_ms, **outcome.timings_ms, "encode": (time.perf_counter() - started) * 1000.0}
        return FrameResultData(
            request.frame_number, status, kind, message, outcome.faces, timings, output,
            "" if output is not None else request.output_path,
        )
