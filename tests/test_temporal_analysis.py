"""Whole-shot analysis on real clips: cuts, stable tracks, keyframes, exact resume, smoothing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from inference_server.store.shot_db import ShotDatabase
from inference_server.temporal.analyse import AnalyseConfig, FrameAnalysis, ShotAnalyser
from inference_server.temporal.smoothing import jitter, smooth_trajectory


def _frames(path: Path, count: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames: list[np.ndarray] = []
    while len(frames) < count:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    assert len(frames) == count, f"{path.name}: only {len(frames)} frames decoded"
    return frames


def _analyse(db_path: Path, frames: list[np.ndarray], models, stop: int | None = None) -> list[FrameAnalysis]:
    analyser = ShotAnalyser(ShotDatabase(db_path), "shot", models, AnalyseConfig())
    results = []
    for index, rgb8 in enumerate(frames[:stop]):
        results.append(analyser.analyse(1001 + index, rgb8, hashlib.sha256(rgb8.tobytes()).hexdigest()))
    return results


@pytest.fixture(scope="module")
def talking_head(faces_dir: Path) -> list[np.ndarray]:
    return _frames(faces_dir / "lp_d18.mp4", 48)


def test_talking_head_is_one_stable_track_with_sparse_keyframes(talking_head, dlib_models, tmp_path: Path) -> None:
    results = _analyse(tmp_path / "db.sqlite", talking_head, dlib_models)
    assert {r.cut for r in results} == {0}
    assert all([o.track for o in r.observations] == [0] for r in results)
    keyframes = [r.frame for r in results if r.keyframe]
    assert keyframes[0] == 1001 and len(keyframes) <= len(results) // 4
    tracked = [o for r in results for o in r.observations if o.origin == "track"]
    assert len(tracked) >= len(results) // 2


def test_scene_cuts_start_new_tracks(faces_dir: Path, dlib_models, tmp_path: Path) -> None:
    results = _analyse(tmp_path / "db.sqlite", _frames(faces_dir / "fr_short_hamilton_clip.mp4", 100), dlib_models)
    cut_starts = [r.frame for r in results[1:] if r.cut != results[results.index(r) - 1].cut]
    assert len(cut_starts) >= 2, "the clip cuts to the audience and back"
    assert all(results[f - 1001].keyframe for f in cut_starts)
    tracks_per_cut: dict[int, set[int]] = {}
    for r in results:
        tracks_per_cut.setdefault(r.cut, set()).update(o.track for o in r.observations)
    seen: set[int] = set()
    for cut in sorted(tracks_per_cut):
        assert not (tracks_per_cut[cut] & seen), "a track id continued across a cut"
        seen |= tracks_per_cut[cut]


def test_interrupted_analysis_resumes_to_the_same_result(talking_head, dlib_models, tmp_path: Path) -> None:
    straight = _analyse(tmp_path / "a.sqlite", talking_head, dlib_models)
    _analyse(tmp_path / "b.sqlite", talking_head, dlib_models, stop=21)  # the server "dies" after 21 frames
    resumed = _analyse(tmp_path / "b.sqlite", talking_head, dlib_models)
    assert sum(r.replayed for r in resumed) == 21
    for a, b in zip(straight, resumed):
        assert (a.cut, a.keyframe) == (b.cut, b.keyframe)
        assert [(o.track, o.rect, o.origin) for o in a.observations] == [(o.track, o.rect, o.origin) for o in b.observations]
        assert all(np.array_equal(o.landmarks, p.landmarks) for o, p in zip(a.observations, b.observations))


def test_changed_plate_restarts_the_analysis(talking_head, dlib_models, tmp_path: Path) -> None:
    _analyse(tmp_path / "db.sqlite", talking_head[:6], dlib_models)
    graded = [np.ascontiguousarray(f[..., ::-1]) for f in talking_head[:6]]
    again = _analyse(tmp_path / "db.sqlite", graded, dlib_models)
    assert not any(r.replayed for r in again)


def test_smoothing_reduces_jitter_on_a_real_track(talking_head, dlib_models, tmp_path: Path) -> None:
    results = _analyse(tmp_path / "db.sqlite", talking_head, dlib_models)
    raw = np.stack([r.observations[0].landmarks for r in results]).astype(np.float64)
    smoothed = smooth_trajectory(raw, sigma=2.0)
    assert jitter(smoothed) < 0.5 * jitter(raw)
    assert np.abs(smoothed - raw).mean() < 2.0, "smoothing must not drift away from the face"
    assert np.array_equal(smooth_trajectory(raw, sigma=0.0), raw)
