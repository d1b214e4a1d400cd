"""Settings and results of the classical swap (shared by the model stage and the compositing stage)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SMALL_FACE_ERODE = 0.04
"""How far (x face size) the swap's mask of a small face is eroded at full small-face strength (see
:func:`~.model.swap_model`'s ``small``)."""


@dataclass(frozen=True)
class SwapParams:
    """Model-affecting settings of the classical swap (the defaults are the tuned embedded settings).

    All of them go into the model-output cache key: :func:`~.model.swap_model` records the mask ramp
    width, the edge-match reach and the shading degree in its output, and the compositing stage uses
    them from there.

    Lengths are fractions of the target face size (longest side of its landmark box).

    Attributes:
        jaw_weight: share of the source's jaw line in the destination outline (0 = target's outline).
        keep_mouth_interior: where the target's mouth is open, show its own mouth interior and put the
            source's lips around it (at the source's lip thickness); elsewhere the source's lips open
            as far as the target's.
        mouth_open_threshold: inner-lip gap / mouth width above which the target mouth counts as open.
        forehead: height of the forehead band above the brows that is swapped.
        adaptive_forehead: lower the forehead band to where hair starts in either face.
        occlusion: outside the inner features, keep the plate where either face is much darker than
            its skin (hair falling over the forehead or cheeks).
        feather: width of the inward mask ramp.
        grow: how far beyond the target's own face polygon the mask may reach.
        shading_degree: degree of the polynomial lighting field fitted to target/source skin (0 = off).
        edge_match: how far inside the mask edge the plate's colour along the edge is blended into the
            face (a low-frequency gradient-domain blend; 0 = off).
        match_sharpness: soften the source to the target's level of fine detail (never sharpens).
        pose_tolerance, pose_range: head-pose gap (degrees) up to which the source keeps its exact
            proportions, and over which it blends to an affine fit and the target's outline.
        tps_regularisation: thin-plate smoothing (normalised units, 0 = exact interpolation).
        grid_step: spacing in px of the coarse grid the warp is evaluated on.
    """

    jaw_weight: float = 0.5
    keep_mouth_interior: bool = True
    mouth_open_threshold: float = 0.12
    forehead: float = 0.22
    adaptive_forehead: bool = True
    occlusion: bool = True
    feather: float = 0.08
    grow: float = 0.05
    shading_degree: int = 2
    match_sharpness: bool = True
    edge_match: float = 0.25
    pose_tolerance: float = 5.0
    pose_range: float = 20.0
    tps_regularisation: float = 1e-3
    grid_step: int = 4


@dataclass(frozen=True)
class SwapResult:
    """Output of :func:`swap_face`.

    Attributes:
        face: (h, w, 3) float32 display-referred sRGB-encoded [0, 1], same size as the target crop.
        mask: (h, w) float32 [0, 1] full-strength blend mask; exactly 0.0 where the plate stays untouched.
    """

    face: np.ndarray
    mask: np.ndarray

