"""Temporal stabilisation of a rendered face against its track's neighbouring frames: their faces rendered
as this frame's are (same renderer, so cached model outputs are shared) and carried along the plate's
optical flow, which is cached like a model output (it depends only on the plates).

Everything is on frame t's crop grid ``box``: crops ``(h, w, 3)`` float32 scene-linear RGB, flows
``(h, w, 2)`` float32 px, reliabilities ``(h, w)`` float32 [0, 1].
"""

from __future__ import annotations

import hashlib

import cv2
import numpy as np

from .crops import Box, face_crop_box
from .face_render import FaceRenderer, ModelCache, Processed
from .settings import RenderSettings
from .stabilise import Neighbour, reliable_flow, stabilise_face
from .targets import FaceTarget, NeighbourPlate


def _grey(rgb: np.ndarray, settings: RenderSettings) -> np.ndarray:
    """(h, w) uint8 display-referred grey of a linear crop (what the flow is computed on)."""
    return cv2.cvtColor(np.ascontiguousarray(settings.colourspace.to_proxy8(rgb)), cv2.COLOR_RGB2GRAY)


def neighbour_flow(crop: np.ndarray, plate_n: np.ndarray, frame_hash: str, neighbour_hash: str, box: Box,
                   settings: RenderSettings, cache: ModelCache | None) -> tuple[np.ndarray, np.ndarray]:
    """The plate's flow from frame t's ``crop`` to the neighbour's plate ``plate_n`` (same ``box``) and its
    reliability (:func:`~.stabilise.reliable_flow`), cached at half precision under a key of the frames,
    the box and the settings it depends on."""
    key = hashlib.sha256(f"flow|{frame_hash}|{neighbour_hash}|{tuple(box)}|{settings.flow_threshold!r}|"
                         f"{settings.colourspace.name}".encode()).hexdigest()
    def compute() -> dict[str, np.ndarray]:
        flow, reliability = reliable_flow(_grey(crop, settings), _grey(plate_n, settings), settings.flow_threshold)
        return {"flow": flow.astype(np.float16), "reliability": reliability.astype(np.float16)}

    payload = cache.get_or_compute(key, compute)[0] if cache is not None else compute()
    return payload["flow"].astype(np.float32), payload["reliability"].astype(np.float32)


def stabilised_face(done: Processed, crop: np.ndarray, box: Box, target: FaceTarget, frame_hash: str,
                    frame_hw: tuple[int, int], renderer: FaceRenderer) -> np.ndarray:
    """Blend the face (what :meth:`~.face_render.Processed.change` says) with its neighbours', carried
    along the plate's flow; ``renderer`` renders the neighbours' faces as it rendered ``done``.

    Args:
        done: frame t's rendered face on ``crop``, the plate inside ``box``.
        target: the face, with its neighbours' stored plates.
        frame_hash: frame t's content hash; ``frame_hw`` its size.
    Returns:
        (h, w, 3) float32 linear face over ``box``.
    """
    settings = renderer.settings
    neighbours = []
    for nb in target.neighbours:
        neighbour = _neighbour(nb, box, frame_hw, crop, frame_hash, renderer)
        if neighbour is not None:
            neighbours.append(neighbour)
    return stabilise_face(done.face, done.change(crop), done.mask, neighbours, settings.stabilise)


def _neighbour(nb: NeighbourPlate, box: Box, frame_hw: tuple[int, int], crop: np.ndarray, frame_hash: str,
               renderer: FaceRenderer) -> Neighbour | None:
    """A neighbour's rendered change on its own crop with the flow to it, or None when its stored plate
    does not cover this face's crop."""
    cb = nb.crop_box
    if not (cb.x0 <= box.x0 and cb.y0 <= box.y0 and box.x1 <= cb.x1 and box.y1 <= cb.y1):
        return None
    nbox = face_crop_box(nb.landmarks, frame_hw, renderer.settings.crop_margin)
    nbox = Box(max(nbox.x0, cb.x0), max(nbox.y0, cb.y0), min(nbox.x1, cb.x1), min(nbox.y1, cb.y1))
    ncrop = nb.crop[nbox.y0 - cb.y0:nbox.y1 - cb.y0, nbox.x0 - cb.x0:nbox.x1 - cb.x0]
    rendered = renderer.render(ncrop, nbox, nb.landmarks, nb.frame_hash, nb.source_mix)
    plate_n = nb.crop[box.y0 - cb.y0:box.y1 - cb.y0, box.x0 - cb.x0:box.x1 - cb.x0]
    flow, reliability = neighbour_flow(crop, plate_n, frame_hash, nb.frame_hash, box, renderer.settings,
                                       renderer.cache)
    return Neighbour(rendered.change(ncrop), rendered.mask, (nbox.x0 - box.x0, nbox.y0 - box.y0), flow, reliability)
