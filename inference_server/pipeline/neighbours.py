"""Temporal stabilisation of a rendered face against its track's neighbouring frames: their faces rendered
as this frame's are (same renderer, so cached model outputs are shared) and carried along the plate's
optical flow, which is cached like a model output (it depends only on the plates).

Everything is on frame t's crop grid ``box``: crops ``(h, w, 3)`` float32 scene-linear RGB, flows
``(h, w, 2)`` float32 px, reliabilities ``(h, w)`` float32 [0, 1].
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import cv2
import numpy as np

from .crops import Box, face_crop_box
from .face_render import FaceRenderer, ModelCache, Processed
from .settings import RenderSettings
from .stabilise import Neighbour, reliable_flow_pair, stabilise_face
from .targets import FaceTarget, NeighbourPlate


def _grey(rgb: np.ndarray, settings: RenderSettings) -> np.ndarray:
    """(h, w) uint8 display-referred grey of a linear crop (what the flow is computed on)."""
    return cv2.cvtColor(np.ascontiguousarray(settings.colourspace.to_proxy8(rgb)), cv2.COLOR_RGB2GRAY)


def pair_flow(plate_t: Callable[[], np.ndarray], plate_n: Callable[[], np.ndarray], frame_hash: str,
              neighbour_hash: str, area: Box, settings: RenderSettings, cache: ModelCache | None
              ) -> tuple[np.ndarray, np.ndarray]:
    """The plate's flow from frame t to its neighbour n over ``area`` and its reliability, from one cached
    computation shared by the pair: frame n asks for the same two flows (:func:`~.stabilise.reliable_flow_pair`)
    under the same key, as the frames are ordered by content hash, so a pair of neighbours costs two DIS
    flows, not four. ``plate_t`` and ``plate_n`` cut each frame's plate to ``area`` (only when computed)."""
    t_first = frame_hash <= neighbour_hash
    first, second = (frame_hash, neighbour_hash) if t_first else (neighbour_hash, frame_hash)
    key = hashlib.sha256(f"flow-pair|{first}|{second}|{tuple(area)}|{settings.flow_threshold!r}|"
                         f"{settings.colourspace.name}".encode()).hexdigest()

    def compute() -> dict[str, np.ndarray]:
        a, b = (plate_t(), plate_n()) if t_first else (plate_n(), plate_t())
        (ab, ab_rel), (ba, ba_rel) = reliable_flow_pair(_grey(a, settings), _grey(b, settings), settings.flow_threshold)
        return {"ab": ab.astype(np.float16), "ab_reliability": ab_rel.astype(np.float16),
                "ba": ba.astype(np.float16), "ba_reliability": ba_rel.astype(np.float16)}

    payload = cache.get_or_compute(key, compute)[0] if cache is not None else compute()
    name = "ab" if t_first else "ba"
    return payload[name].astype(np.float32), payload[f"{name}_reliability"].astype(np.float32)


def _union(a: Box, b: Box) -> Box:
    return Box(min(a.x0, b.x0), min(a.y0, b.y0), max(a.x1, b.x1), max(a.y1, b.y1))


def _contains(outer: Box, inner: Box) -> bool:
    return outer.x0 <= inner.x0 and outer.y0 <= inner.y0 and inner.x1 <= outer.x1 and inner.y1 <= outer.y1


def stabilised_face(done: Processed, crop: np.ndarray, box: Box, target: FaceTarget, frame_hash: str,
                    frame_hw: tuple[int, int], renderer: FaceRenderer, plate: Callable[[Box], np.ndarray]
                    ) -> np.ndarray:
    """Blend the face (what :meth:`~.face_render.Processed.change` says) with its neighbours', carried
    along the plate's flow; ``renderer`` renders the neighbours' faces as it rendered ``done``.

    Args:
        done: frame t's rendered face on ``crop``, the plate inside ``box``.
        target: the face, with its neighbours' stored plates.
        frame_hash: frame t's content hash; ``frame_hw`` its size.
        plate: frame t's plate inside a box, ``(h, w, 3)`` float32 linear RGB (the flow to a neighbour is
            computed over both faces' boxes).
    Returns:
        (h, w, 3) float32 linear face over ``box``.
    """
    settings = renderer.settings
    neighbours = []
    for nb in target.neighbours:
        neighbour = _neighbour(nb, box, frame_hw, frame_hash, renderer, plate)
        if neighbour is not None:
            neighbours.append(neighbour)
    return stabilise_face(done.face, done.change(crop), done.mask, neighbours, settings.stabilise)


def _neighbour(nb: NeighbourPlate, box: Box, frame_hw: tuple[int, int], frame_hash: str, renderer: FaceRenderer,
               plate: Callable[[Box], np.ndarray]) -> Neighbour | None:
    """A neighbour's rendered change on its own crop with the flow to it, or None when its stored plate
    does not cover this face's crop.

    The flow is the pair's (:func:`pair_flow`) over the union of the two faces' crop boxes when the
    neighbour's stored plate covers that union, else over ``box`` alone. Which one depends only on the two
    faces, so a frame renders the same in any order."""
    cb = nb.crop_box
    if not _contains(cb, box):
        return None
    own_box = face_crop_box(nb.landmarks, frame_hw, renderer.settings.crop_margin)  # as frame n renders itself
    nbox = Box(max(own_box.x0, cb.x0), max(own_box.y0, cb.y0), min(own_box.x1, cb.x1), min(own_box.y1, cb.y1))
    ncrop = nb.crop[nbox.y0 - cb.y0:nbox.y1 - cb.y0, nbox.x0 - cb.x0:nbox.x1 - cb.x0]
    rendered = renderer.render(ncrop, nbox, nb.landmarks, nb.frame_hash, nb.source_mix)
    area = _union(box, own_box)
    if not _contains(cb, area):  # the neighbour's stored plate does not reach over both faces: this face's box
        area = box
    flow, reliability = pair_flow(lambda: plate(area),
                                  lambda: nb.crop[area.y0 - cb.y0:area.y1 - cb.y0, area.x0 - cb.x0:area.x1 - cb.x0],
                                  frame_hash, nb.frame_hash, area, renderer.settings, renderer.cache)
    rows, cols = slice(box.y0 - area.y0, box.y1 - area.y0), slice(box.x0 - area.x0, box.x1 - area.x0)
    return Neighbour(rendered.change(ncrop), rendered.mask, (nbox.x0 - box.x0, nbox.y0 - box.y0), flow[rows, cols],
                     reliability[rows, cols])
