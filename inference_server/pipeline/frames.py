"""What a frame render takes and gives: the plate with its content hash, the per-face reports, the outcome."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .crops import Box


@dataclass(frozen=True)
class FramePlate:
    """The frame being rendered.

    Attributes:
        pixels: ``(H, W, C)`` float32 scene-linear plate (data window), channels in file order.
        rgb_index: the indices of R, G, B in the channel axis.
        frame_hash: the content hash of its R, G, B (model outputs are cached under it).
    """

    pixels: np.ndarray
    rgb_index: list[int]
    frame_hash: str


@dataclass(frozen=True)
class FaceReport:
    index: int
    swapped: bool
    source_label: str
    box: tuple[float, float, float, float]
    pose: tuple[float, float, float]
    track: int = -1
    cache_hit: bool = False
    jitter: tuple[float, float] = (float("nan"), float("nan"))
    identity_distance: float = float("nan")        # output face -> its source
    identity_distance_plate: float = float("nan")  # plate face -> the same source (a tracked face: the track's
                                                   # plate identity, FaceTarget.identity; else this frame's)
    fp32_fallback: bool = False                    # reduced precision failed; recomputed in fp32
    detector: str = ""                             # hog | cnn | a registry detector name ("" unknown)
    size: float = float("nan")                     # landmark extent, px (faces.geometry.face_size)
    skipped: str = ""                              # why the face was left as the plate ("" = it was not)
    profile_fade: float = 0.0                      # how far a swap faded to the plate as the head turned
                                                   # toward profile: 0 none, 1 all plate (compositing.profile)
    source_weights: tuple[tuple[str, float], ...] = ()  # the sources the face was swapped with and their
                                                   # weights (two while a track cross-fades between sources;
                                                   # every source alike for a one-identity swapper)


@dataclass(frozen=True)
class FrameOutcome:
    pixels: np.ndarray
    faces: tuple[FaceReport, ...]
    timings_ms: dict[str, float]
    occlusion: tuple[tuple[Box, np.ndarray], ...] = ()  # (crop box, (h, w) float32 keep-mask) of each face an
                                                        # occluder ran on, frame pixels (the preview's overlay)

    @property
    def faces_swapped(self) -> int:
        return sum(f.swapped for f in self.faces)

    @property
    def skipped(self) -> tuple[str, ...]:
        """Why faces were left as the plate (one line each)."""
        return tuple(f.skipped for f in self.faces if f.skipped)
