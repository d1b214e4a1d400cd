"""Message conversion at the gRPC boundary: engine results -> protobuf replies, wire parameters -> SessionParams.

Pure functions of their arguments; ``service.py`` calls them and does nothing else with protobuf shapes.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from facebridge import schema
from facebridge_wire.chunking import packed_chunks
from facebridge_wire.v1 import facebridge_pb2 as pb

from ..pipeline.render import FaceReport
from ..plates.encoded_file import EncodedFile
from .engine import AnalyseResultData, FrameResultData, PreviewData, ShotSummary
from .sessions import SessionParams

FRAME_CODE = {"ok": pb.FrameStatus.OK, "warning": pb.FrameStatus.WARNING, "failed": pb.FrameStatus.FAILED}


def face_qc(face: FaceReport) -> pb.FaceQC:
    return pb.FaceQC(
        index=face.index,
        swapped=face.swapped,
        identity_distance=face.identity_distance,
        identity_distance_plate=face.identity_distance_plate,
        source_label=face.source_label,
        box=list(face.box),
        yaw=face.pose[0],
        pitch=face.pose[1],
        roll=face.pose[2],
        track_id=face.track,
        cache_hit=face.cache_hit,
        jitter_raw=face.jitter[0],
        jitter_smoothed=face.jitter[1],
        fp32_fallback=face.fp32_fallback,
        detector=face.detector,
        size=face.size,
        skipped=face.skipped,
        profile_fade=face.profile_fade,
        source_weights=[pb.SourceWeight(label=label, weight=weight) for label, weight in face.source_weights],
    )


def result_messages(frame_id: int, result: FrameResultData, input_copies: bool = False
                    ) -> Iterator[pb.ProcessFramesResponse | bytes]:
    """The frame's result, then its output in chunks (serialized ``ProcessFramesResponse``: ``packed_chunks``);
    with ``input_copies`` (the client takes parts of the result from the input it sent), every part of the output
    that is a range of the input as a ``FrameCopy`` instead of its bytes."""
    qc = pb.FrameQC(
        faces_found=len(result.faces),
        faces_swapped=sum(f.swapped for f in result.faces),
        faces=[face_qc(f) for f in result.faces],
        timings_ms=result.timings_ms,
        analysed=result.analysed,
    )
    yield pb.ProcessFramesResponse(
        result=pb.FrameResult(
            frame_id=frame_id,
            frame_number=result.frame_number,
            status=pb.FrameStatus(code=FRAME_CODE[result.status], kind=result.kind, message=result.message),
            qc=qc,
            total_bytes=result.output.size if result.output is not None else 0,
            output_path=result.output_path,
        )
    )
    if result.output is not None:
        yield from output_messages(frame_id, result.output, input_copies)


def output_messages(frame_id: int, output: EncodedFile,
                    input_copies: bool) -> Iterator[pb.ProcessFramesResponse | bytes]:
    """``output`` as ``ProcessFramesResponse`` chunks in order; with ``input_copies``, its pieces that are ranges of
    the input as ``FrameCopy`` messages (one per piece: :func:`~..plates.exr_chunks.splice` gives each run of
    the input's bytes as one piece) and the new bytes between them packed into chunks."""
    offset = start = 0  # where the next piece goes; where the new bytes not yet sent begin
    new: list[bytes | memoryview] = []
    for piece in output.pieces:
        if input_copies and piece.input_offset is not None:
            yield from packed_chunks(pb.ProcessFramesResponse, frame_id, start, new)
            yield pb.ProcessFramesResponse(copy=pb.FrameCopy(frame_id=frame_id, offset=offset,
                                                             input_offset=piece.input_offset, length=piece.size))
            new, start = [], offset + piece.size
        else:
            new.append(piece.data)
        offset += piece.size
    yield from packed_chunks(pb.ProcessFramesResponse, frame_id, start, new)


def analyse_message(result: AnalyseResultData) -> pb.AnalyseProgress:
    return pb.AnalyseProgress(
        frame_number=result.frame_number,
        status=pb.FrameStatus(code=FRAME_CODE[result.status], kind=result.kind, message=result.message),
        cut=result.cut,
        keyframe=result.keyframe,
        replayed=result.replayed,
        tracks=list(result.tracks),
        timings_ms=result.timings_ms,
    )


def preview_image(image: np.ndarray | None) -> pb.PreviewImage | None:
    if image is None:
        return None
    h, w, c = image.shape
    return pb.PreviewImage(width=w, height=h, channels=c, data=np.ascontiguousarray(image, "<f2").tobytes())


def preview_message(data: PreviewData) -> pb.PreviewResponse:
    from ..pipeline.preview import OVERLAY_NAMES

    reply = pb.PreviewResponse(
        frame_number=data.frame_number,
        status=pb.FrameStatus(code=FRAME_CODE[data.status], kind=data.kind, message=data.message),
        rendered=preview_image(data.rendered),
        plate=preview_image(data.plate),
        x0=data.box.x0, y0=data.box.y0, x1=data.box.x1, y1=data.box.y1,
        frame_width=data.frame_hw[1], frame_height=data.frame_hw[0],
        faces=[pb.PreviewFace(qc=face_qc(f), landmarks=np.asarray(lm, np.float32).ravel().tolist())
               for f, lm in zip(data.faces, data.landmarks)],
        timings_ms=data.timings_ms,
        analysed=data.analysed,
        colourspace=data.colourspace,
    )
    if data.labels is not None:
        h, w = data.labels.shape
        reply.regions.CopyFrom(pb.RegionOverlay(width=w, height=h, labels=np.ascontiguousarray(data.labels).tobytes(),
                                                region_names=list(OVERLAY_NAMES)))
    return reply


def shot_message(summary: ShotSummary) -> pb.ShotInfo:
    return pb.ShotInfo(
        shot=summary.shot,
        first_frame=summary.frames[0] if summary.frames else 0,
        last_frame=summary.frames[-1] if summary.frames else 0,
        frames=len(summary.frames),
        tracks=list(summary.tracks),
        cuts=summary.cuts,
        keyframes=summary.keyframes,
        created=summary.created,
        frame_summaries=[pb.FrameSummary(frame_number=f.frame_number, cut=f.cut, keyframe=f.keyframe,
                                         tracks=list(f.tracks), jitter_raw=f.jitter[0], jitter_smoothed=f.jitter[1])
                         for f in summary.per_frame],
    )


def session_params(p: pb.ProcessParams) -> SessionParams:
    """Wire parameters -> SessionParams through the schema's mapping (absent numbers take the schema's
    default); unchecked: the engine validates them."""
    return SessionParams(**schema.values_from_message(p), output_format=p.output_format or "exr",
                         quality_checks=not p.skip_quality_checks)
