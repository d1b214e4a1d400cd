"""Rendering faces into a frame: model output (cached by content) plus the artist's compositing controls.

Convention:
    - ``FramePlate.pixels``: ``(H, W, C)`` float32 scene-linear plate (data window), channels in file order.
    - A :class:`~.targets.FaceTarget` says where a face is (its landmarks, detected on this frame or
      smoothed over its track). Each face is rendered on its crop of the original plate
      (:class:`~.face_render.FaceRenderer`), optionally stabilised against its track's neighbours
      (:mod:`.neighbours`), and composited into a copy of the plate; every other pixel stays bit-exact.
    - A swapped face fades to the plate as its head turns toward profile (:mod:`..compositing.profile`).
    - A swap leaves faces smaller than ``settings.min_face`` that the artist did not pick as the plate,
      with a report saying why (:mod:`.small_faces`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..compositing.profile import faded_mask, profile_fade
from ..faces.dlib_models import DlibFaceModels
from ..faces.geometry import face_size
from ..faces.pose import head_pose
from ..faces.sources import SourceFace
from .composite import composite_face
from .crops import face_crop_box
from .face_render import FaceRenderer, ModelCache
from .frames import FaceReport, FrameOutcome, FramePlate
from .memos import RenderMemos
from .neighbours import stabilised_face
from .quality import with_identity
from .settings import RenderSettings
from .small_faces import is_skipped, skip_message
from .targets import FaceTarget
from .timing import Stopwatch

__all__ = ["FaceReport", "FrameOutcome", "FramePlate", "RenderRequest", "RenderServices", "render_faces"]


@dataclass(frozen=True)
class RenderRequest:
    """What to render on a frame: the faces, and the sources and settings they are rendered with.

    Attributes:
        targets: the faces, in report order.
        sources: the prepared sources, when the stage takes one: per face the nearest in head pose, or on a
            track the source(s) of its plan (``FaceTarget.source_mix``); an aligned swapper takes all of them
            as one identity.
        source_hashes: the content hash of each source (cache keys); a missing one is the source's label.
        settings: the render settings.
        key_base: hash of the model ids and the model-affecting settings (part of every model-output key).
    """

    targets: Sequence[FaceTarget]
    sources: Sequence[SourceFace]
    source_hashes: Sequence[str]
    settings: RenderSettings
    key_base: str


@dataclass(frozen=True)
class RenderServices:
    """What the renders of one server share: the dlib models (quality checks), the model-output cache and
    the in-memory memos (None: nothing kept)."""

    models: DlibFaceModels
    cache: ModelCache | None
    memos: RenderMemos | None = None


def render_faces(frame: FramePlate, request: RenderRequest, services: RenderServices,
                 clock: Stopwatch) -> FrameOutcome:
    """Render each target face and composite it with the settings' controls; see the module docstring.

    Returns the frame's outcome: a copy of ``frame.pixels`` with the faces composited, a report per face
    and the stage timings of ``clock``.
    """
    settings = request.settings
    renderer = FaceRenderer(request.sources, request.source_hashes, settings, request.key_base, services.cache,
                            services.memos)
    pixels, rgb_index = frame.pixels, frame.rgb_index
    out = pixels.copy()
    reports = []
    occlusion = []
    frame_hw = pixels.shape[:2]
    swaps = settings.model_stage.needs_source
    for index, target in enumerate(request.targets):
        x0, y0, x1, y1 = (float(v) for v in target.rect)
        if swaps and is_skipped(target, settings.min_face):
            reports.append(FaceReport(index=index, swapped=False, source_label="", box=(x0, y0, x1, y1),
                                      pose=head_pose(target.landmarks), track=target.track, jitter=target.jitter,
                                      detector=target.detector, size=face_size(target.landmarks),
                                      skipped=skip_message(target, index, settings.min_face)))
            continue
        box = face_crop_box(target.landmarks, frame_hw, settings.crop_margin)
        clock.lap("prepare")
        crop = pixels[box.slices][..., rgb_index]
        done = renderer.render(crop, box, target.landmarks, frame.frame_hash, target.source_mix)
        if done.occlusion is not None:
            occlusion.append((done.work.box, done.occlusion))
        face = done.face
        clock.lap("cache" if done.hit else "model")
        if settings.stabilise > 0.0 and target.neighbours:
            face = stabilised_face(done, crop, box, target, frame.frame_hash, frame_hw, renderer,
                                   lambda area: pixels[area.slices][..., rgb_index])
            clock.lap("stabilise")
        # a swap hands over to the plate as the head turns toward profile (1 on every face up to 40 degrees)
        fade = profile_fade(head_pose(target.landmarks)[0]) if settings.model_stage.needs_source else 1.0
        written = composite_face(out, pixels, rgb_index, done.work.box, face, faded_mask(done.mask, fade))
        clock.lap("composite")
        report = FaceReport(index=index, swapped=written > 0,
                            source_label=done.source.label if done.source is not None else "",
                            box=(x0, y0, x1, y1),
                            pose=head_pose(target.landmarks), track=target.track, cache_hit=done.hit,
                            jitter=target.jitter, fp32_fallback=done.fp32_fallback, detector=target.detector,
                            size=face_size(target.landmarks), profile_fade=1.0 - fade,
                            source_weights=tuple((request.sources[i].label, w)
                                                 for i, w in renderer.source_weights(target.landmarks,
                                                                                     target.source_mix)))
        if settings.quality_checks:
            report = with_identity(report, frame, out, done.work.box, target, done.source, services.models,
                                   settings.colourspace, services.memos, services.cache)
            clock.lap("qc")
        reports.append(report)
    return FrameOutcome(pixels=out, faces=tuple(reports), timings_ms=clock.timings, occlusion=tuple(occlusion))
