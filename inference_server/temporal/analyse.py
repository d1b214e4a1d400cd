"""Whole-shot analysis: cuts, detection on keyframes, landmark tracking in between, stable track ids.

A face the detector misses on a keyframe is carried by flow for a few frames while the flow is sure, with
detection on every frame until it is found again (:mod:`.bridging`); frames where the detector finds every
tracked face analyse as they would without it.

Frames must arrive in increasing frame order. Each analysed frame is committed to the shot database
before the next is looked at, so a killed server resumes exactly where it stopped: frames already
committed with the same content are replayed from the database (restoring the tracker's state) instead
of being analysed again, and the result equals that of an uninterrupted run. A frame committed with other
content (its plate was changed, e.g. a paint fix) truncates the analysis there: the frames before it stand,
and it and the frames after it are analysed again from the state the frames before it replayed, so the shot
ends as a fresh analysis of the changed plates would leave it.

A replayed frame needs none of its pixels: its display proxy, gray image and cut thumbnail are made only
when the next frame is analysed new and compares with it (the proxy may be given as a function that makes it),
and :meth:`ShotAnalyser.is_known` tells beforehand which frames will replay.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import cv2
import numpy as np

from ..faces.finder import FaceFinder
from ..store.shot_db import Observation, ShotDatabase
from .bridging import Followed, bridged, max_missed_frames
from .cuts import is_cut, thumbnail
from .tracking import Rect, associate, face_size, propagate, transform_rect


@dataclass(frozen=True)
class AnalyseConfig:
    """Analysis settings; part of a shot's identity in the database (changing them re-analyses)."""

    keyframe_interval: int = 8
    cut_threshold: float = 0.25
    min_detection_score: float = 0.25
    min_track_iou: float = 0.3
    reid_distance: float = 0.5
    track_tolerance: float = 0.05  # flow vs landmark-fit disagreement, x face size, that forces a detection
    min_flow_confidence: float = 0.5
    detector: str = ""    # the detector's model id ("": dlib's HOG with its CNN fallback)
    landmarker: str = ""  # the landmarker's model id ("": dlib's 68-point shape predictor)

    def as_dict(self) -> dict[str, object]:
        """The settings by name; the model ids only when set, so dlib-default shots keep their identity."""
        return {k: v for k, v in asdict(self).items() if k not in ("detector", "landmarker") or v}


class NotInAnalysis(ValueError):
    """Replay only: a frame the imported analysis does not hold with this content (the plate changed)."""


@dataclass(frozen=True)
class FrameAnalysis:
    frame: int
    cut: int
    keyframe: bool
    replayed: bool
    observations: tuple[Observation, ...]


@dataclass
class _Track:
    id: int
    landmarks: np.ndarray
    rect: Rect
    missed: int = 0  # detection frames in a row on which the detector missed the face (carried by flow)


class _FrameView:
    """One frame's display proxy ``(H, W, 3)`` uint8 and what is derived from it: its gray ``(H, W)`` uint8
    (the landmarks' flow) and its cut thumbnail ``(36, 64, 3)`` uint8, each made the first time it is asked
    for (a replayed frame's only when the frame after it is analysed new), then kept."""

    def __init__(self, rgb8: np.ndarray | Callable[[], np.ndarray]) -> None:
        self._source = rgb8
        self._rgb8: np.ndarray | None = None
        self._gray: np.ndarray | None = None
        self._thumb: np.ndarray | None = None

    def rgb8(self) -> np.ndarray:
        if self._rgb8 is None:
            self._rgb8 = self._source() if callable(self._source) else self._source
            self._source = self._rgb8  # (a function's hold on the plate let go)
        return self._rgb8

    def gray(self) -> np.ndarray:
        if self._gray is None:
            self._gray = cv2.cvtColor(self.rgb8(), cv2.COLOR_RGB2GRAY)
        return self._gray

    def thumb(self) -> np.ndarray:
        if self._thumb is None:
            self._thumb = thumbnail(self.rgb8())
        return self._thumb


@dataclass
class _State:
    prev_view: _FrameView | None = None  # the previous frame's (None before the first)
    prev_frame: int | None = None
    cut: int = -1
    last_keyframe: int | None = None
    active: dict[int, _Track] = field(default_factory=dict)


class ShotAnalyser:
    """Analyses one shot frame by frame into a ``ShotDatabase``.

    Args:
        db: where frames, observations and tracks are committed.
        shot: the shot id.
        models: the face finder: detector, landmarks and identity embedding (dlib's, or models chosen from
            the models folder; the chosen models' ids belong in ``config``).
        config: analysis settings; a shot analysed with other settings is reset.
        replay_only: only replay committed frames (an imported analysis): a frame the database does not hold
            with the same content raises :class:`NotInAnalysis` instead of being analysed, and nothing is
            ever reset or written.
        max_missed: the most detection frames in a row a track the detector misses is carried by flow
            (:mod:`.bridging`); None: two keyframe intervals, 0: a missed track ends at once.
    """

    def __init__(self, db: ShotDatabase, shot: str, models: FaceFinder, config: AnalyseConfig,
                 replay_only: bool = False, max_missed: int | None = None) -> None:
        self.db = db
        self.shot = shot
        self.models = models
        self.config = config
        self.replay_only = replay_only
        self.max_missed = max_missed_frames(config.keyframe_interval) if max_missed is None else max_missed
        if replay_only:
            stored = db.shot_config(shot)
            if stored != config.as_dict():
                raise NotInAnalysis(f"shot '{shot}' holds no analysis made with these settings to replay")
        elif db.ensure_shot(shot, config.as_dict()) != config.as_dict():
            db.reset_shot(shot)
            db.ensure_shot(shot, config.as_dict())
        self._committed = db.analysed_frames(shot)
        self._keyframes = set(db.keyframes(shot))
        self._tracks = db.tracks(shot)
        self._state = _State()

    def is_known(self, frame: int, content_hash: str) -> bool:
        """Whether ``frame`` is committed with this content: it replays, unless a changed plate of an earlier
        frame truncates the analysis there first (a hint, e.g. to skip making its display proxy; any thread)."""
        known = self._committed.get(frame)
        return known is not None and known[0] == content_hash

    def analyse(self, frame: int, rgb8: np.ndarray | Callable[[], np.ndarray], content_hash: str) -> FrameAnalysis:
        """Analyse (or replay) one frame; ``rgb8`` is the ``(H, W, 3)`` uint8 display proxy of the plate, or a
        function that makes it (called at most once, only if the frame or the next one needs its pixels)."""
        state = self._state
        if state.prev_frame is not None and frame <= state.prev_frame:
            raise ValueError(f"frame {frame} arrived after frame {state.prev_frame}; analysis needs increasing order")
        view = _FrameView(rgb8)
        known = self._committed.get(frame)
        if self.replay_only and (known is None or known[0] != content_hash):
            state.prev_frame = frame
            raise NotInAnalysis(
                f"the plate differs from the analysed one (content hash {content_hash[:12]}, analysed "
                f"{known[0][:12]})" if known is not None else "the imported analysis has no such frame")
        if known is not None and known[0] != content_hash:
            self._truncate(frame)
            known = None
        result = self._replay(frame, known[1]) if known is not None else self._analyse_new(frame, view, content_hash)
        state.prev_view, state.prev_frame = view, frame
        return result

    def _truncate(self, frame: int) -> None:
        """The plate of ``frame`` changed under a committed analysis: forget the analysis from ``frame`` on (the
        frames after it were tracked from the old plate) and carry on from the state the frames before it
        replayed, as a resumed analysis does: the frames before it stay analysed, and the shot ends up as a
        fresh analysis of the changed plates would leave it."""
        self.db.truncate_shot(self.shot, frame)
        self._committed = {f: known for f, known in self._committed.items() if f < frame}
        self._keyframes = {f for f in self._keyframes if f < frame}
        self._tracks = self.db.tracks(self.shot)

    def _replay(self, frame: int, cut: int) -> FrameAnalysis:
        state = self._state
        observations = tuple(self.db.frame_observations(self.shot, frame))
        keyframe = frame in self._keyframes
        state.active = {}
        for obs in observations:
            missed = self._misses_before(obs.track, frame, cut) + 1 if keyframe and obs.origin == "track" else 0
            state.active[obs.track] = _Track(obs.track, obs.landmarks, obs.rect, missed)
        state.cut = cut
        if keyframe:
            state.last_keyframe = frame
        return FrameAnalysis(frame, cut, keyframe, True, observations)

    def _analyse_new(self, frame: int, view: _FrameView, content_hash: str) -> FrameAnalysis:
        state, cfg = self._state, self.config
        new_cut = (state.prev_view is None or state.prev_frame != frame - 1
                   or is_cut(state.prev_view.thumb(), view.thumb(), cfg.cut_threshold))
        if new_cut:
            state.cut += 1
            state.active = {}
        tracked: dict[int, _Track] = {}
        # with nobody tracked, look for faces entering the picture more often than on regular keyframes
        interval = cfg.keyframe_interval if state.active else max(1, cfg.keyframe_interval // 4)
        need_detection = new_cut or state.last_keyframe is None or frame - state.last_keyframe >= interval
        followed: dict[int, Followed] = {}
        for track in state.active.values():
            assert state.prev_view is not None  # a track is active only after a frame was analysed
            moved, confidence = propagate(state.prev_view.gray(), view.gray(), track.landmarks)
            rect = transform_rect(track.rect, track.landmarks, moved)
            fitted = self.models.landmarks(view.rgb8(), rect)
            disagreement = float(np.median(np.linalg.norm(fitted - moved, axis=1))) / face_size(fitted)
            confident = confidence >= cfg.min_flow_confidence and disagreement <= cfg.track_tolerance
            # an unsure flow, or a track the detector missed (unconfirmed): detect on this frame
            if not confident or track.missed > 0:
                need_detection = True
            tracked[track.id] = _Track(track.id, fitted, rect, track.missed)
            followed[track.id] = Followed(rect, confident, track.missed)
        new_tracks: list[tuple[int, int, np.ndarray]] = []
        origins = {t: "track" for t in tracked}
        scores = {t: 0.0 for t in tracked}
        if need_detection:
            # dlib: HOG first; where it finds fewer faces than the tracks expect (at least one), the CNN fallback
            detections = self.models.detect_with_fallback(view.rgb8(), cfg.min_detection_score,
                                                          expected=max(1, len(state.active)))
            matched = associate({t: tr.rect for t, tr in tracked.items()}, [d.rect for d in detections], cfg.min_track_iou)
            by_detection = {i: t for t, i in matched.items()}
            kept = {t: tracked[t] for t in matched}
            for index, det in enumerate(detections):
                track_id = by_detection.get(index)
                if track_id is None:
                    embedding = self.models.embed(view.rgb8(), det.landmarks).astype(np.float32)
                    track_id = self._reidentify(embedding, state.cut, exclude=set(kept))
                    if track_id is None:
                        track_id = max(self._tracks, default=-1) + 1
                        self._tracks[track_id] = (state.cut, embedding)
                        new_tracks.append((track_id, state.cut, embedding))
                kept[track_id] = _Track(track_id, det.landmarks.astype(np.float32), det.rect)
                origins[track_id] = "detect" if det.detector == "hog" else det.detector
                scores[track_id] = det.score
            # tracks the detector missed: carried by flow while it is sure, for a bounded number of frames
            unmatched = {t: f for t, f in followed.items() if t not in kept}
            for track_id, missed in bridged(unmatched, [tr.rect for tr in kept.values()], self.max_missed,
                                            cfg.min_track_iou).items():
                kept[track_id] = replace(tracked[track_id], missed=missed)
            tracked = kept
            state.last_keyframe = frame
        observations = tuple(Observation(frame, t, tr.landmarks, scores[t], origins[t], tr.rect)
                             for t, tr in sorted(tracked.items()))
        self.db.commit_frame(self.shot, frame, content_hash, state.cut, observations, new_tracks, keyframe=need_detection)
        self._committed[frame] = (content_hash, state.cut)
        if need_detection:
            self._keyframes.add(frame)
        state.active = tracked
        return FrameAnalysis(frame, state.cut, need_detection, False, observations)

    def _misses_before(self, track: int, frame: int, cut: int) -> int:
        """Detection frames in a row before ``frame`` (same cut) on which the committed analysis carried
        ``track`` by flow alone (a keyframe observation of origin ``track``): restores the bridging state
        on replay."""
        count, previous = 0, frame - 1
        while previous in self._keyframes and self._committed.get(previous, ("", -1))[1] == cut:
            if not any(o.track == track and o.origin == "track"
                       for o in self.db.frame_observations(self.shot, previous)):
                break
            count, previous = count + 1, previous - 1
        return count

    def _reidentify(self, embedding: np.ndarray, cut: int, exclude: set[int]) -> int | None:
        """The closest earlier track of the same cut within ``reid_distance``, if any."""
        best, best_distance = None, self.config.reid_distance
        for track_id, (track_cut, known) in sorted(self._tracks.items()):
            if track_cut != cut or track_id in exclude:
                continue
            distance = float(np.linalg.norm(known - embedding))
            if distance < best_distance:
                best, best_distance = track_id, distance
        return best
