"""Model output of the aligned (neural or classical-enhancer) stages: a change to the plate crop, cached.

An aligned stage (a swapper such as inswapper_128, a restorer such as GPEN or the embedded enhancer)
computes a new face crop. What is cached is the *change* it makes, in the model space (display-referred
sRGB-encoded [0, 1]), over the work box where it acts, plus where it acts:

    result_model = plate_model + delta      (inside the work box)

so a model that returns its input unchanged gives back the plate to the last bit, and the compositing
controls (blend, region weights, feather, erode, grain, colour match) are applied afterwards from the
cache in linear light (:mod:`.delta`), exactly as for the classical swap (:mod:`.classical`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from ..faces.geometry import face_size
from .masks import MAX_DISTANCE, face_polygon, polygon_mask, signed_distance
from .readonly import ReadOnlyArrays

KIND = 2                 # payload["kind"] of a DeltaOutput (the classical swap's payloads have none)
FOREHEAD = 0.32          # the acting region reaches this far above the brows, x face size
EDGE_FEATHER = 0.06      # the stage's own soft edge, x face size


@dataclass(frozen=True, eq=False)
class DeltaOutput(ReadOnlyArrays):
    """What an aligned stage computed for one face crop (cache payload; arrays only).

    Attributes:
        crop_hw: (2,) int32 height and width of the working crop.
        box: (4,) int32 ``y0, x0, y1, x1`` work box inside the crop (empty when y1 <= y0).
        delta: (bh, bw, 3) float16 change in model space (sRGB-encoded) over the work box.
        edge_distance: (bh, bw) float16 signed distance (px, positive inside) to the edge of the region
            the stage acts on (face outline with forehead, within the model's aligned square).
        coverage: (bh, bw) float16 in [0, 1], where the model's aligned square covers the crop (its own
            soft edge); a grown mask never reaches past it.
        fp32_fallback: (1,) uint8, 1 when reduced precision gave non-finite values and fp32 was used.
        settings: (2,) float32 ``face_size_px, feather_px``.
    """

    crop_hw: np.ndarray
    box: np.ndarray
    delta: np.ndarray
    edge_distance: np.ndarray
    coverage: np.ndarray
    fp32_fallback: np.ndarray
    settings: np.ndarray

    @property
    def is_empty(self) -> bool:
        return int(self.box[2]) <= int(self.box[0]) or int(self.box[3]) <= int(self.box[1])

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"kind": np.array(KIND, np.int32), **{f.name: np.asarray(getattr(self, f.name)) for f in fields(self)}}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "DeltaOutput":
        return cls(**{f.name: arrays[f.name] for f in fields(cls)})


def is_delta_payload(payload: dict[str, np.ndarray]) -> bool:
    return "kind" in payload and int(payload["kind"]) == KIND


def acting_region(shape_hw: tuple[int, int], landmarks: np.ndarray) -> np.ndarray:
    """Hard (h, w) uint8 region an aligned stage acts on: the face outline closed over a forehead band."""
    return polygon_mask(shape_hw, face_polygon(landmarks, FOREHEAD))


def make_delta_output(crop_model: np.ndarray, result_model: np.ndarray, coverage: np.ndarray,
                      landmarks: np.ndarray, fp32_fallback: bool = False) -> DeltaOutput:
    """Package a stage's result for the cache.

    Args:
        crop_model: (h, w, 3) float32 model-space working crop the stage was given.
        result_model: (h, w, 3) float32 model-space result on the same grid (equal to ``crop_model``
            wherever the stage did not act).
        coverage: (h, w) float32 [0, 1] where the model's aligned square covers the crop.
        landmarks: (68, 2) landmarks in crop pixels.
    """
    h, w = crop_model.shape[:2]
    size = face_size(landmarks)
    hard = acting_region((h, w), landmarks) * (coverage > 0).astype(np.uint8)
    distance = signed_distance(hard)
    # the work box: where the mask could ever be non-zero (inside the coverage, grown masks included)
    ys, xs = np.nonzero(coverage > 0)
    if ys.size == 0 or not hard.any():
        box = np.array([0, 0, 0, 0], np.int32)
    else:
        box = np.array([ys.min(), xs.min(), ys.max() + 1, xs.max() + 1], np.int32)
    y0, x0, y1, x1 = (int(v) for v in box)
    delta = (np.asarray(result_model, np.float32) - np.asarray(crop_model, np.float32))[y0:y1, x0:x1]
    return DeltaOutput(
        crop_hw=np.array([h, w], np.int32),
        box=box,
        delta=np.nan_to_num(delta).astype(np.float16),
        edge_distance=np.clip(distance[y0:y1, x0:x1], -MAX_DISTANCE, MAX_DISTANCE).astype(np.float16),
        coverage=np.clip(coverage[y0:y1, x0:x1], 0.0, 1.0).astype(np.float16),
        fp32_fallback=np.array([int(fp32_fallback)], np.uint8),
        settings=np.array([size, EDGE_FEATHER * size], np.float32),
    )
