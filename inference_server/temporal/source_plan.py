"""Which source photo a tracked face is swapped with on each frame of its track, without pops.

The classical swap takes one source photo per face, the one whose head pose is nearest the target's
(:func:`~inference_server.faces.sources.choose_source_index`). Chosen frame by frame, a head turning
slowly past the midpoint of two photos' poses (or jittering around it) switches photo from one frame to
the next: a visible pop. Over an analysed track the choice is made for the whole track instead:

1. the pose-nearest source per frame, with hysteresis: the current source is kept until another one is
   nearer by more than ``margin`` degrees;
2. segments shorter than ``min_segment`` frames are merged into a neighbour (the frames go to whichever
   neighbouring source is nearer in pose over them), until every segment is long enough or one is left;
3. each switch becomes a cross-fade over ``crossfade`` frames centred on it: both sources' faces are
   rendered and blended by a smoothstep weight.

Poses are ``(yaw, pitch)`` degrees as :func:`~inference_server.faces.pose.head_pose` measures them, on the
track's smoothed landmarks; the distance is :func:`~inference_server.faces.pose.pose_distance` (roll
ignored). Everything here is pure and deterministic (ties go to the lower source index).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..faces.pose import head_pose

MIN_SEGMENT = 12
"""Fewest frames a source is used for on a track (half a second at 24 fps), unless the track is shorter."""
CROSSFADE = 8
"""Frames over which a track's switch of source is blended (centred on the switch)."""
MARGIN = 0.5
"""Degrees by which another source must be nearer in pose before the per-frame choice leaves the current one
(above the pose noise of smoothed landmarks, a few tenths of a degree; longer flicker is the segments' job)."""


@dataclass(frozen=True)
class SourceMix:
    """The source(s) of one face on one frame.

    Attributes:
        first: index of the source used (or faded from).
        second: index of the source faded to (``first`` when there is no fade).
        weight: weight of ``second`` in ``[0, 1)``; 0 when there is no fade.
    """

    first: int
    second: int
    weight: float = 0.0

    @property
    def blended(self) -> bool:
        return self.second != self.first and self.weight > 0.0

    @property
    def dominant(self) -> int:
        """The source with the larger weight (``first`` at 0.5)."""
        return self.second if self.weight > 0.5 else self.first


def pose_costs(poses: np.ndarray, source_poses: Sequence[tuple[float, float, float]]) -> np.ndarray:
    """``(T, S)`` float64 pose distance (degrees, yaw and pitch) of each frame's pose to each source's.

    Args:
        poses: ``(T, 2)`` yaw, pitch per frame (NaN rows: no pose, filled from the nearest frame with one;
            all NaN: every cost 0).
        source_poses: S >= 1 (yaw, pitch, roll) of the sources.
    """
    p = np.asarray(poses, np.float64).reshape(-1, 2)
    valid = np.isfinite(p).all(axis=1)
    if not valid.any():
        return np.zeros((len(p), len(source_poses)))
    index, frames = np.flatnonzero(valid), np.arange(len(p))
    at = np.searchsorted(index, frames)  # first frame with a pose at or after each frame
    after = index[np.clip(at, 0, len(index) - 1)]
    before = index[np.clip(at - 1, 0, len(index) - 1)]
    filled = p[np.where(np.abs(before - frames) <= np.abs(after - frames), before, after)]
    s = np.array([[sp[0], sp[1]] for sp in source_poses], np.float64)
    return np.sqrt(((filled[:, None, :] - s[None, :, :]) ** 2).sum(axis=2))


def hysteresis_choice(costs: np.ndarray, margin: float = MARGIN) -> np.ndarray:
    """``(T,)`` int source index per frame: the nearest on the first frame, then the current one is kept
    until another is nearer by more than ``margin`` degrees (then the nearest, lowest index on ties)."""
    c = np.asarray(costs, np.float64)
    choice = np.zeros(len(c), np.int64)
    if not len(c):
        return choice
    current = int(np.argmin(c[0]))
    for t in range(len(c)):
        best = int(np.argmin(c[t]))
        if c[t, best] < c[t, current] - margin:
            current = best
        choice[t] = current
    return choice


def _segments(choice: np.ndarray) -> list[list[int]]:
    """Runs of equal values: ``[start, stop, value]`` each."""
    runs: list[list[int]] = []
    for t, value in enumerate(choice.tolist()):
        if runs and runs[-1][2] == value:
            runs[-1][1] = t + 1
        else:
            runs.append([t, t + 1, int(value)])
    return runs


def merged_choice(choice: np.ndarray, costs: np.ndarray, min_segment: int = MIN_SEGMENT) -> np.ndarray:
    """``choice`` with every run shorter than ``min_segment`` frames given to a neighbouring run's source
    (the one nearer in pose summed over the short run; the earlier on ties), shortest run first (earliest
    on ties), until all runs are long enough or one run is left."""
    out = np.asarray(choice, np.int64).copy()
    c = np.asarray(costs, np.float64)
    while True:
        runs = _segments(out)
        short = [r for r in runs if r[1] - r[0] < min_segment]
        if len(runs) <= 1 or not short:
            return out
        start, stop, _ = min(short, key=lambda r: (r[1] - r[0], r[0]))
        k = next(i for i, r in enumerate(runs) if r[0] == start)
        neighbours = [runs[i][2] for i in (k - 1, k + 1) if 0 <= i < len(runs)]
        target = min(neighbours, key=lambda s: c[start:stop, s].sum())
        out[start:stop] = target


def crossfaded(choice: np.ndarray, crossfade: int = CROSSFADE) -> tuple[SourceMix, ...]:
    """Per frame, the source(s) and weight: each switch of ``choice`` blended over ``crossfade`` frames
    centred on it (frames ``switch - crossfade // 2 .. switch + crossfade - crossfade // 2 - 1``), by a
    smoothstep of the frame's position in the fade (weights strictly between 0 and 1). Fade windows are cut
    at the track's ends and where they would reach the middle of a neighbouring run; 0 or 1 frame: hard
    switches."""
    values = np.asarray(choice, np.int64)
    mixes = [SourceMix(int(v), int(v)) for v in values.tolist()]
    runs = _segments(values)
    for k in range(1, len(runs)):
        switch, a, b = runs[k][0], runs[k - 1][2], runs[k][2]
        lo = max(switch - crossfade // 2, (runs[k - 1][0] + switch + 1) // 2)
        hi = min(switch + crossfade - crossfade // 2, (switch + runs[k][1]) // 2)
        n = hi - lo
        if crossfade <= 1 or n <= 1:
            continue
        for t in range(lo, hi):
            x = (t - lo + 0.5) / n
            mixes[t] = SourceMix(a, b, float(x * x * (3.0 - 2.0 * x)))
    return tuple(mixes)


def plan_sources(poses: np.ndarray, source_poses: Sequence[tuple[float, float, float]],
                 min_segment: int = MIN_SEGMENT, crossfade: int = CROSSFADE,
                 margin: float = MARGIN) -> tuple[SourceMix, ...]:
    """The source plan of one track (see the module docstring).

    Args:
        poses: ``(T, 2)`` yaw, pitch (degrees) of the track's face on its T consecutive frames (NaN rows
            where it has no landmarks).
        source_poses: the sources' (yaw, pitch, roll), S >= 1.
    Returns:
        T :class:`SourceMix`, one per frame.
    """
    if not len(source_poses):
        raise ValueError("no sources given")
    costs = pose_costs(poses, source_poses)
    if len(source_poses) == 1:
        return tuple(SourceMix(0, 0) for _ in range(len(costs)))
    choice = merged_choice(hysteresis_choice(costs, margin), costs, min_segment)
    return crossfaded(choice, crossfade)


def track_poses(landmarks: np.ndarray) -> np.ndarray:
    """``(T, 2)`` float64 yaw, pitch of ``(T, 68, 2)`` landmarks (NaN rows where any landmark is NaN)."""
    lm = np.asarray(landmarks, np.float64)
    out = np.full((len(lm), 2), np.nan)
    for t in range(len(lm)):
        if np.isfinite(lm[t]).all():
            out[t] = head_pose(lm[t])[:2]
    return out


__all__ = ["CROSSFADE", "MARGIN", "MIN_SEGMENT", "SourceMix", "crossfaded", "hysteresis_choice", "merged_choice",
           "plan_sources", "pose_costs", "track_poses"]
