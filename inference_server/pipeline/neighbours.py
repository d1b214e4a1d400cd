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

from ..plates.halves import float_to_half, half_to_float
from .crops import Box, contains, face_crop_box, intersection, union
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
        return {"ab": float_to_half(ab), "ab_reliability": float_to_half(ab_rel),
                "ba": float_to_half(ba), "ba_reliability": float_to_half(ba_rel)}

    payload = cache.get_or_compute(key, compute)[0] if cache is not None else compute()
    name = "ab" if t_first else "ba"
    return half_to_float(payload[name]), half_to_float(payload[f"{name}_reliability"])


FLOW_CONTEXT = 0.1  # the flow's area reaches this far (x its size) beyond where the two faces can change pixels


def flow_area(reach_t: Box, reach_n: Box, bounds: Box) -> Box:
    """The area the plate's flow between two neighbouring frames is computed over: the union of the boxes where
    either frame's face can change pixels (:attr:`~.face_render.Processed.reach`), grown by ``FLOW_CONTEXT`` x
    its larger side (at least 16 px) so the flow has context at the faces' edges, within ``bounds`` (the union
    of the two faces' crop boxes, which the flow used to cover whole). Symmetric in the two frames, so both
    compute the same area and share one cached flow computation."""
    u = union(reach_t, reach_n)
    grow = max(16, int(np.ceil(FLOW_CONTEXT * max(u.width, u.height))))
    return intersection(Box(u.x0 - grow, u.y0 - grow, u.x1 + grow, u.y1 + grow), bounds)


def _on_grid(values: np.ndarray, area: Box, box: Box) -> np.ndarray:
    """``values`` ``(ha, wa, ...)`` over ``area`` placed on ``box``'s grid, 0 where ``area`` does not reach."""
    out = np.zeros((box.height, box.width) + values.shape[2:], np.float32)
    common = intersection(area, box)
    if not common.is_empty:
        out[common.y0 - box.y0:common.y1 - box.y0, common.x0 - box.x0:common.x1 - box.x0] = \
            values[common.y0 - area.y0:common.y1 - area.y0, common.x0 - area.x0:common.x1 - area.x0]
    return out


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
            computed over the area where either face can change pixels, :func:`flow_area`).
    Returns:
        (h, w, 3) float32 linear face over ``box``.
    """
    settings = renderer.settings
    neighbours = []
    for nb in target.neighbours:
        neighbour = _neighbour(nb, box, done.reach, frame_hw, frame_hash, renderer, plate)
        if neighbour is not None:
            neighbours.append(neighbour)
    return stabilise_face(done.face, done.change(crop), done.mask, neighbours, settings.stabilise)


def _neighbour(nb: NeighbourPlate, box: Box, reach: Box, frame_hw: tuple[int, int], frame_hash: str,
               renderer: FaceRenderer, plate: Callable[[Box], np.ndarray]) -> Neighbour | None:
    """A neighbour's rendered change on its own crop with the flow to it, or None when its stored plate
    does not cover this face's crop or neither face changes a pixel.

    The flow is the pair's (:func:`pair_flow`) over :func:`flow_area` of this face's ``reach`` and the
    neighbour's, within both faces' crop boxes and the neighbour's stored plate; on ``box``'s grid it is 0 and
    unreliable wherever that area does not reach (no face of either frame can change a pixel there). The area
    depends only on the two faces, so a frame renders the same in any order."""
    cb = nb.crop_box
    if not contains(cb, box):
        return None
    own_box = face_crop_box(nb.landmarks, frame_hw, renderer.settings.crop_margin)  # as frame n renders itself
    nbox = intersection(own_box, cb)
    ncrop = nb.crop[nbox.y0 - cb.y0:nbox.y1 - cb.y0, nbox.x0 - cb.x0:nbox.x1 - cb.x0]
    rendered = renderer.render(ncrop, nbox, nb.landmarks, nb.frame_hash, nb.source_mix)
    if reach.is_empty and rendered.reach.is_empty:
        return None
    area = intersection(flow_area(reach, rendered.reach, union(box, own_box)), cb)
    flow, reliability = pair_flow(lambda: plate(area),
                                  lambda: nb.crop[area.y0 - cb.y0:area.y1 - cb.y0, area.x0 - cb.x0:area.x1 - cb.x0],
                                  frame_hash, nb.frame_hash, area, renderer.settings, renderer.cache)
    return Neighbour(rendered.change(ncrop), rendered.mask, (nbox.x0 - box.x0, nbox.y0 - box.y0),
                     _on_grid(flow, area, box), _on_grid(reliability, area, box))
