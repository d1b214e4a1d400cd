"""Small faces: which faces are too small for a clean swap, and how strongly a swapped one is reduced.

A face's size is :func:`~inference_server.faces.geometry.face_size` of its landmarks in frame pixels (the
longest side of the landmark box), compared with the ``min_face`` setting (px; 0 = no threshold):

- below ``min_face`` a face is left as the plate with a warning (:func:`skip_message`), unless the artist
  picked it (``face`` = ``track:N``, or the reference identity's track); a picked one is swapped at full
  small-face strength (no forehead band, nothing above the brows, a smaller mask);
- from ``min_face`` up to ``SMALL_FACE_RAMP`` x ``min_face`` the strength falls linearly to 0, so nothing
  pops at the threshold; above that a face renders exactly as without the setting.
"""

from __future__ import annotations

from ..faces.geometry import face_size
from .targets import FaceTarget

SMALL_FACE_RAMP = 1.5
"""Faces up to this x ``min_face`` get a reduced forehead band; larger ones are untouched by ``min_face``."""


def small_face_strength(size_px: float, min_face: float) -> float:
    """1 at or below ``min_face``, falling linearly to 0 at ``SMALL_FACE_RAMP`` x ``min_face``; 0 when
    ``min_face`` <= 0."""
    if min_face <= 0.0:
        return 0.0
    return min(1.0, max(0.0, (SMALL_FACE_RAMP * min_face - size_px) / ((SMALL_FACE_RAMP - 1.0) * min_face)))


def is_skipped(target: FaceTarget, min_face: float) -> bool:
    """Whether ``target`` is left as the plate: smaller than ``min_face`` and not picked by the artist."""
    return min_face > 0.0 and not target.picked and face_size(target.landmarks) < min_face


def skip_message(target: FaceTarget, index: int, min_face: float) -> str:
    """Why a face was left as the plate, and how to swap it anyway (one line)."""
    size = face_size(target.landmarks)
    if target.track >= 0:
        return (f"face track {target.track} is {int(size)} px, below min_face {min_face:g}: left as the plate "
                f"(pick it with --face track:{target.track} to swap it)")
    return (f"face {index} is {int(size)} px, below min_face {min_face:g}: left as the plate (analyse the shot "
            f"and pick its track with --face track:N, or lower min_face, to swap it)")
