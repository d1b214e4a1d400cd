"""Smoothed face tracks of an analysed shot, and face selection.

Convention: landmarks ``(68, 2)`` float32 x/y data-window pixels. A track lives within one cut; its
trajectory spans its first to last observed frame, with short gaps interpolated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..store.shot_db import Observation
from .smoothing import smooth_trajectory


@dataclass(frozen=True)
class TrackPath:
    """One track's raw and smoothed landmark trajectories over frames ``first .. first + len - 1``."""

    track: int
    first: int
    raw: np.ndarray       # (T, 68, 2) float64, NaN where unobserved
    smoothed: np.ndarray  # (T, 68, 2) float64, NaN where a gap was too long to fill

    def landmarks(self, frame: int) -> np.ndarray | None:
        index = frame - self.first
        if not 0 <= index < len(self.smoothed) or np.isnan(self.smoothed[index]).any():
            return None
        return self.smoothed[index].astype(np.float32)

    def jitter_at(self, frame: int) -> tuple[float, float]:
        """Mean |second difference| (px) of the raw and the smoothed trajectory around ``frame``."""
        index = frame - self.first
        if not 1 <= index < len(self.raw) - 1:
            return float("nan"), float("nan")

        def d2(traj: np.ndarray) -> float:
            value = traj[index + 1] - 2.0 * traj[index] + traj[index - 1]
            return float(np.abs(value).mean()) if not np.isnan(value).any() else float("nan")

        return d2(self.raw), d2(self.smoothed)


def build_paths(observations: Sequence[Observation], sigma: float, max_gap: int = 4) -> dict[int, TrackPath]:
    """Group observations by track and smooth each track over its whole length (zero-phase)."""
    by_track: dict[int, list[Observation]] = {}
    for obs in observations:
        by_track.setdefault(obs.track, []).append(obs)
    paths = {}
    for track, items in sorted(by_track.items()):
        items.sort(key=lambda o: o.frame)
        first, last = items[0].frame, items[-1].frame
        raw = np.full((last - first + 1, 68, 2), np.nan, np.float64)
        for obs in items:
            raw[obs.frame - first] = obs.landmarks
        paths[track] = TrackPath(track, first, raw, smooth_trajectory(raw, sigma, max_gap))
    return paths


@dataclass(frozen=True)
class FaceSelection:
    """Which faces to process: ``all``, one ``track`` id, or the track per cut nearest a ``reference``."""

    mode: str = "all"  # all | track | reference
    track: int = -1
    reference: np.ndarray | None = None  # (128,) identity embedding
    max_distance: float = 0.6

    @classmethod
    def parse(cls, text: str, reference: np.ndarray | None = None) -> "FaceSelection":
        """``all``, ``track:N`` or ``ref`` (with ``reference`` given). ValueError otherwise."""
        text = (text or "all").strip()
        if text == "all":
            return cls()
        if text.startswith("track:") and text[6:].isdigit():
            return cls("track", int(text[6:]))
        if text.startswith("ref") and reference is not None:
            return cls("reference", reference=reference)
        raise ValueError(f"face selection '{text}': expected all, track:N or ref:IMAGE")

    def choose(self, present: Sequence[int], track_info: Mapping[int, tuple[int, np.ndarray]]) -> list[int]:
        """The tracks to process among ``present`` (track ids on this frame); ``track_info``: id -> (cut, embedding)."""
        if self.mode == "all":
            return sorted(present)
        if self.mode == "track":
            return [self.track] if self.track in present else []
        assert self.reference is not None
        chosen = []
        cuts = {track_info[t][0] for t in present if t in track_info}
        for cut in sorted(cuts):
            in_cut = [t for t, (c, _) in sorted(track_info.items()) if c == cut]
            distances = {t: float(np.linalg.norm(track_info[t][1] - self.reference)) for t in in_cut}
            best = min(distances, key=lambda t: (distances[t], t))
            if distances[best] <= self.max_distance and best in present:
                chosen.append(best)
        return chosen
