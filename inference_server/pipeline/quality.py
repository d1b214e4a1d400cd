"""Quality checks of a rendered face: identity distances of the output's and the plate's face."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np

from ..faces.dlib_models import DlibFaceModels
from ..faces.sources import SourceFace
from ..plates.colour import ColourSpace
from .crops import Box
from .face_render import ModelCache, readonly
from .frames import FaceReport, FramePlate
from .memos import RenderMemos
from .targets import FaceTarget


def with_identity(report: FaceReport, frame: FramePlate, out: np.ndarray, box: Box, target: FaceTarget,
                  source: SourceFace | None, models: DlibFaceModels, colourspace: ColourSpace,
                  memos: RenderMemos | None, cache: ModelCache | None = None) -> FaceReport:
    """``report`` with the identity distances of the output's and the plate's face (in the crop ``box``) to
    ``source``; without a source (restoration), the output's distance to the plate's own face on this frame (how
    much identity it moved).

    With a source, a tracked face's plate identity is its track's (``target.identity``: the shot analysis embedded
    the face where it first detected it, for re-identification): the person being replaced, measured once per
    track rather than embedded again on every frame (one of the two identity embeddings a frame's checks cost).
    A face without a track (no shot analysis) is embedded on this frame, as a restoration's always is.

    The output's face is embedded where the target's landmarks say it is, as the plate's is: the swap and the
    restoration draw the face onto those landmarks, so the output's identity is read from the same chip the
    plate's would be (not from landmarks fitted again on the output, which would add the landmark model's own
    wobble on a blended face to the distance), and a render that replays an analysis needs no landmark model at
    all (the embedded models then never load it: ~1.1 s of a render task's start).

    Args:
        frame: the plate; ``out`` ``(H, W, C)`` float32 the rendered frame.
        models: the dlib models (identity embeddings of display-referred proxies; no landmarks are fitted).
        colourspace: how the plate becomes a display-referred proxy.
        memos: where the plate face's embedding is remembered (by frame, box and landmarks), or None.
        cache: where it is also kept across servers (a re-render in a new process computes only the
            output's embedding), or None.
    """
    offset = np.array([box.x0, box.y0], np.float32)
    landmarks = target.landmarks - offset  # the face's landmarks on the crop: where the plate's and the output's are
    rgb_index = frame.rgb_index

    key = ("plate-identity", frame.frame_hash, tuple(box), colourspace.name,
           np.asarray(target.landmarks, np.float32).tobytes())

    def embedded() -> dict[str, np.ndarray]:
        plate8 = np.ascontiguousarray(colourspace.to_proxy8(frame.pixels[box.slices][..., rgb_index]))
        return {"embedding": np.asarray(models.embed(plate8, landmarks), np.float64)}

    def plate_embedding() -> np.ndarray:
        if cache is None:
            return readonly(embedded()["embedding"])
        digest = hashlib.sha256(f"{models.identifier}|{key[:4]!r}".encode() + b"\0" + key[4]).hexdigest()
        return readonly(cache.get_or_compute(digest, embedded)[0]["embedding"])

    if source is not None and target.identity is not None:
        plate_id = np.asarray(target.identity, np.float64)
    elif memos is not None:
        plate_id = memos.plate_identity.get_or_compute(key, plate_embedding)
    else:
        plate_id = plate_embedding()
    out8 = np.ascontiguousarray(colourspace.to_proxy8(out[box.slices][..., rgb_index]))
    out_id = models.embed(out8, landmarks)
    if source is None:
        return replace(report, identity_distance=float(np.linalg.norm(out_id - plate_id)))
    return replace(
        report,
        identity_distance=float(np.linalg.norm(out_id - source.embedding)),
        identity_distance_plate=float(np.linalg.norm(plate_id - source.embedding)),
    )
