"""Bridging detector misses inside a track: which tracks the detector did not find on a detection frame are
still carried by optical flow, and for how long.

A track missed by the detector is kept (followed by flow, observation origin ``track`` on a keyframe) while
its flow is confident and the landmarks refitted where the flow put them agree with it, for at most
``max_missed`` detection frames in a row, and never onto a face the detector did find. Detection runs on
every frame while a track is unconfirmed, so the track is either found again within a few frames or ends;
a face found again after its track ended gets its id back by re-identification.

Convention: rects are ``(x0, y0, x1, y1)`` float pixels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .tracking import Rect, rect_iou

BRIDGE_KEYFRAME_INTERVALS = 2
"""How long a missed face is carried by flow alone: this many keyframe intervals of detection frames."""


def max_missed_frames(keyframe_interval: int) -> int:
    """The most detection frames in a row a track may be missed on and still be carried (at least 1)."""
    return max(1, BRIDGE_KEYFRAME_INTERVALS * keyframe_interval)


@dataclass(frozen=True)
class Followed:
    """A track followed by flow onto the current frame."""

    rect: Rect        # the track's rect carried by the flow
    confident: bool   # flow confident and the refitted landmarks agree with it
    missed: int       # detection frames in a row, before this one, on which the detector missed the face


def bridged(unmatched: Mapping[int, Followed], found: Sequence[Rect], max_missed: int,
            min_iou: float) -> dict[int, int]:
    """The tracks the detector missed on this detection frame that flow carries on.

    Args:
        unmatched: the followed tracks no detection was associated with, by track id.
        found: the rects of the faces the detector found (and that were given a track) on this frame.
        max_missed: the most detection frames in a row a track may be missed on.
        min_iou: a carried rect overlapping a found face this much is that face, not a missed one.

    Returns:
        ``{track: detection frames in a row it has been missed on, this one included}`` for the tracks kept.
    """
    kept = {}
    for track, followed in sorted(unmatched.items()):
        if not followed.confident or followed.missed + 1 > max_missed:
            continue
        if any(rect_iou(followed.rect, rect) >= min_iou for rect in found):
            continue
        kept[track] = followed.missed + 1
    return kept
