"""The faces to render on a frame: where each is (landmarks, detected on this frame or smoothed over its
track) and, for temporal stabilisation, its neighbouring frames' plates."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..faces.finder import FaceFinder
from ..plates.colour import ColourSpace
from ..temporal.source_plan import SourceMix
from .crops import Box
from .timing import Stopwatch


@dataclass(frozen=True)
class NeighbourPlate:
    """A neighbouring frame of the same track, for temporal stabilisation: its plate around the face."""

    frame_hash: str
    landmarks: np.ndarray  # (68, 2) float32 smoothed landmarks on that frame
    crop: np.ndarray       # (h, w, 3) float32 scene-linear RGB of that frame's plate inside ``crop_box``
    crop_box: Box
    source_mix: SourceMix | None = None  # that frame's sources by the track's plan (None: chosen per frame)


@dataclass(frozen=True)
class FaceTarget:
    landmarks: np.ndarray                  # (68, 2) float32
    rect: tuple[float, float, float, float]
    track: int = -1                        # -1: detected on this frame, no track
    jitter: tuple[float, float] = (float("nan"), float("nan"))  # raw, smoothed
    neighbours: tuple[NeighbourPlate, ...] = ()
    detector: str = ""                     # hog | cnn | a registry detector name ("" unknown)
    picked: bool = False                   # chosen by the artist (track:N, reference): swapped even when small
    source_mix: SourceMix | None = None    # the sources on this frame by the track's plan (temporal.source_plan);
                                           # None: the source nearest in pose on this frame alone
    identity: np.ndarray | None = None     # (128,) float32 the track's plate identity, embedded by the shot
                                           # analysis where it first detected the face; None: no track


def detect_targets(pixels: np.ndarray, rgb_index: list[int], models: FaceFinder, colourspace: ColourSpace,
                   min_score: float, clock: Stopwatch) -> list[FaceTarget]:
    """Faces found on this frame alone (no shot analysis): whole-frame proxy, detector, landmarks.

    With dlib's models: HOG first; where it finds no face, dlib's CNN detector on a reduced proxy (frames where
    HOG finds a face never run it). ``models`` may be any face finder (a detector chosen from the models folder).

    ``pixels``: ``(H, W, C)`` float32 scene-linear plate; ``rgb_index`` the indices of R, G, B in it."""
    proxy = colourspace.to_proxy8(pixels[..., rgb_index])
    clock.lap("proxy")
    targets = [FaceTarget(d.landmarks, d.rect, detector=d.detector)
               for d in models.detect_with_fallback(proxy, min_score)]
    clock.lap("detect")
    return targets
