"""Where the faces of an analysed shot are on a frame: the smoothed track paths (remembered until the
shot's analysis changes), the face selection, the neighbouring frames' stored plates for stabilisation,
and the per-shot summaries.

Landmarks are ``(68, 2)`` float32 data-window pixels; plates ``(H, W, C)`` float32 scene-linear.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..pipeline.crops import Box, face_crop_box
from ..pipeline.targets import FaceTarget, NeighbourPlate
from ..plates.errors import PlateError
from ..plates.halves import float_to_half, half_to_float
from ..plates.image_file import channel_selection
from ..store.memo import Memo
from ..store.payload_cache import PayloadCache
from ..store.shot_db import ShotDatabase
from ..temporal.source_plan import SourceMix, plan_sources, track_poses
from ..temporal.tracks import FaceSelection, TrackPath, build_paths

_DETECTORS = {"detect": "hog"}  # observation origin -> detector where they differ (track: followed, not detected)
PLATE_CROP_MARGIN = 1.0  # stored neighbour plates reach further than the render crop (0.6) plus smoothing offsets


@dataclass(frozen=True)
class FrameSummaryData:
    """One analysed frame: its cut, whether it is a keyframe, the tracks on it and their landmark jitter
    (raw, smoothed; the largest over its tracks, NaN when unknown)."""

    frame_number: int
    cut: int
    keyframe: bool
    tracks: tuple[int, ...]
    jitter: tuple[float, float]


@dataclass(frozen=True)
class ShotSummary:
    """One shot of the shot database: its analysed frames, tracks and cuts."""

    shot: str
    frames: tuple[int, ...]
    tracks: tuple[int, ...]
    cuts: int
    keyframes: int
    created: float
    per_frame: tuple[FrameSummaryData, ...] = ()


def plate_crop_key(frame_hash: str, box: Box) -> str:
    """Cache key of the stored plate of frame ``frame_hash`` inside ``box``."""
    return hashlib.sha256(f"plate-crop|{frame_hash}|{tuple(box)}".encode()).hexdigest()


def plate_crop_payload(crop: np.ndarray) -> dict[str, np.ndarray]:
    """A stored plate crop: ``rgb_half`` (float16) when half floats hold ``crop`` exactly, bit for bit (a half
    plate's values always: half the bytes to write, hash and read), else ``rgb`` (float32).

    ``crop``: ``(h, w, 3)`` float32 scene-linear RGB."""
    half = float_to_half(crop)
    if np.array_equal(half_to_float(half).view(np.uint32), crop.view(np.uint32)):
        return {"rgb_half": half}
    return {"rgb": crop}


def plate_crop_rgb(payload: Mapping[str, np.ndarray]) -> np.ndarray:
    """The ``(h, w, 3)`` float32 crop a payload of :func:`plate_crop_payload` holds (the same bits)."""
    half = payload.get("rgb_half")
    return half_to_float(half) if half is not None else np.asarray(payload["rgb"], np.float32)


class ShotTargets:
    """The faces to render on the analysed frames of the shots in ``db``; neighbour plates live in ``cache``."""

    def __init__(self, db: ShotDatabase, cache: PayloadCache) -> None:
        self.db = db
        self.cache = cache
        self._paths: Memo[dict[int, TrackPath]] = Memo(16)
        self._detections: Memo[dict[int, list[tuple[int, str]]]] = Memo(16)
        self._plans: Memo[tuple[SourceMix, ...]] = Memo(64)

    def store_plate_crops(self, pixels: Callable[[], np.ndarray], size: tuple[int, int], rgb_index: list[int],
                          frame_hash: str, landmark_sets: Sequence[np.ndarray]) -> None:
        """Keep the plate around each analysed face, so neighbouring frames can be stabilised against it.
        ``pixels`` gives the ``(H, W, C)`` float32 plate of ``size`` ``(H, W)``, asked for only when a crop is not
        stored yet."""
        for landmarks in landmark_sets:
            box = face_crop_box(landmarks, size, PLATE_CROP_MARGIN)
            key = plate_crop_key(frame_hash, box)
            if not self.cache.contains(key):
                rgb = pixels()[box.slices][..., channel_selection(rgb_index)]
                self.cache.put(key, plate_crop_payload(np.ascontiguousarray(rgb, np.float32)))

    def is_analysed(self, shot: str, frame: int, frame_hash: str) -> bool:
        """Whether ``frame`` of ``shot`` was analysed with this very content."""
        record = self.db.frame_record(shot, frame)
        return record is not None and record[0] == frame_hash

    def observed_landmarks(self, shot: str, frame: int) -> list[np.ndarray]:
        """The landmarks of every face the analysis found on ``frame`` (whatever the selection)."""
        return [o.landmarks for o in self.db.frame_observations(shot, frame)]

    def track_paths(self, shot: str, sigma: float) -> dict[int, TrackPath]:
        """The shot's smoothed track paths, remembered until its analysis changes."""
        key = (shot, sigma, self.db.analysis_fingerprint(shot))
        return self._paths.get_or_compute(key, lambda: build_paths(self.db.observations(shot), sigma))

    def detector(self, shot: str, track: int, frame: int) -> str:
        """Which detector found ``track``'s face as of ``frame``: its latest keyframe detection up to ``frame``,
        else its first one (``hog``, ``cnn`` or a neural detector's registry name; "" when the track has none)."""
        def compute() -> dict[int, list[tuple[int, str]]]:
            found: dict[int, list[tuple[int, str]]] = {}
            for obs in self.db.observations(shot):
                if obs.origin != "track":
                    found.setdefault(obs.track, []).append((obs.frame, _DETECTORS.get(obs.origin, obs.origin)))
            return {t: sorted(items) for t, items in found.items()}

        detections = self._detections.get_or_compute((shot, self.db.analysis_fingerprint(shot)), compute).get(track, [])
        before = [name for f, name in detections if f <= frame]
        return before[-1] if before else (detections[0][1] if detections else "")

    def source_plan(self, shot: str, smoothing: float, track: int,
                    source_poses: Sequence[tuple[float, float, float]]) -> tuple[SourceMix, ...]:
        """The track's source per frame (from its first frame on) for sources of ``source_poses``, made over
        its smoothed landmarks (:func:`~inference_server.temporal.source_plan.plan_sources`), remembered
        until the shot's analysis changes."""
        path = self.track_paths(shot, smoothing)[track]
        poses = tuple(tuple(float(v) for v in p) for p in source_poses)
        key = (shot, smoothing, self.db.analysis_fingerprint(shot), track, poses)
        return self._plans.get_or_compute(key, lambda: plan_sources(track_poses(path.smoothed), source_poses))

    def _mix(self, shot: str, smoothing: float, path: TrackPath, frame: int,
             source_poses: Sequence[tuple[float, float, float]]) -> SourceMix | None:
        """The track's sources on ``frame`` by its plan (None with fewer than two sources)."""
        if len(source_poses) < 2:
            return None
        plan = self.source_plan(shot, smoothing, path.track, source_poses)
        index = frame - path.first
        return plan[index] if 0 <= index < len(plan) else None

    def targets(self, shot: str, frame: int, frame_hw: tuple[int, int], selection: FaceSelection,
                smoothing: float, stabilise: bool,
                source_poses: Sequence[tuple[float, float, float]] = ()) -> list[FaceTarget]:
        """The selected faces on an analysed ``frame``: landmarks smoothed over their tracks (``smoothing``
        frames), with their neighbours' stored plates when ``stabilise`` (PlateError when one is missing).

        With two or more sources (their head poses ``source_poses``), each face carries its track's source
        plan for the frame (and so do its neighbours): the source changes along a track only in segments,
        with a cross-fade (:mod:`~inference_server.temporal.source_plan`)."""
        paths = self.track_paths(shot, smoothing)
        present = [t for t, p in paths.items() if p.landmarks(frame) is not None]
        rects = {o.track: o.rect for o in self.db.frame_observations(shot, frame)}
        targets = []
        tracks = self.db.tracks(shot)
        for track in selection.choose(present, tracks):
            landmarks = paths[track].landmarks(frame)
            assert landmarks is not None
            lo, hi = landmarks.min(axis=0), landmarks.max(axis=0)
            rect = rects.get(track, (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])))
            path = paths[track]

            def mix_at(n: int, path: TrackPath = path) -> SourceMix | None:
                return self._mix(shot, smoothing, path, n, source_poses)

            neighbours = self._neighbours(shot, paths, track, frame, frame_hw, mix_at) if stabilise else ()
            targets.append(FaceTarget(landmarks, rect, track, paths[track].jitter_at(frame), neighbours,
                                      self.detector(shot, track, frame), picked=selection.mode != "all",
                                      source_mix=mix_at(frame), identity=tracks[track][1] if track in tracks else None))
        return targets

    def _neighbours(self, shot: str, paths: dict[int, TrackPath], track: int, frame: int,
                    frame_hw: tuple[int, int], mix_at: Callable[[int], SourceMix | None]
                    ) -> tuple[NeighbourPlate, ...]:
        """The stored plates of ``frame``'s neighbours on ``track`` (PlateError when one is missing), each with
        its sources by the track's plan (``mix_at(frame)``)."""
        neighbours = []
        for n in (frame - 1, frame + 1):
            landmarks = paths[track].landmarks(n)
            record = self.db.frame_record(shot, n)
            raw = [o for o in self.db.frame_observations(shot, n) if o.track == track]
            if landmarks is None or record is None or not raw:
                continue
            box = face_crop_box(raw[0].landmarks, frame_hw, PLATE_CROP_MARGIN)
            payload = self.cache.get(plate_crop_key(record[0], box))
            if payload is None:
                raise PlateError("analysis", f"the stored plate of frame {n} is missing (evicted or analysed by an "
                                             "older version); analyse the shot again")
            neighbours.append(NeighbourPlate(record[0], landmarks, plate_crop_rgb(payload), box, mix_at(n)))
        return tuple(neighbours)

    def summaries(self, shot: str = "", with_frames: bool = False, smoothing: float = 2.0) -> list[ShotSummary]:
        """The shots of the shot database (or just ``shot``, when it exists), with per-frame summaries on request."""
        names = [s for s in self.db.shots() if not shot or s == shot]
        summaries = []
        for name in names:
            frames = self.db.analysed_frames(name)
            keyframes = set(self.db.keyframes(name))
            tracks = self.db.tracks(name)
            created = self.db.analysis_fingerprint(name)[0]
            per_frame: list[FrameSummaryData] = []
            if with_frames and frames:
                paths = self.track_paths(name, smoothing)
                for frame in sorted(frames):
                    on = tuple(t for t, p in sorted(paths.items()) if p.landmarks(frame) is not None)
                    jitters = [paths[t].jitter_at(frame) for t in on]
                    raw = [j[0] for j in jitters if np.isfinite(j[0])]
                    smooth = [j[1] for j in jitters if np.isfinite(j[1])]
                    per_frame.append(FrameSummaryData(frame, frames[frame][1], frame in keyframes, on,
                                                      (max(raw, default=float("nan")),
                                                       max(smooth, default=float("nan")))))
            summaries.append(ShotSummary(name, tuple(sorted(frames)), tuple(sorted(tracks)),
                                         len({c for _, c in frames.values()}), len(keyframes), created,
                                         tuple(per_frame)))
        return summaries
