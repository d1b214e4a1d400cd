"""Issue 16 item 4: a head turning toward profile keeps its track and hands over to the plate with a
cross-fade, never a pop.

A turn is made from a real photo (lp_d9.jpg) with an orthographic model of the head as an ellipsoid: a
point at depth ``z`` moves ``z sin(yaw)`` sideways as the head turns, the face squashes by ``cos(yaw)``.
Turning the landmarks alone makes their measured yaw rise to profile (the render test); turning the image
itself shows what dlib's landmarks make of it (the tracking test).
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from support import load_rgb8, srgb8_to_linear

from facebridge.client.grpc_client import _face_dict
from inference_server.compositing.profile import (
    FADE_END,
    FADE_START,
    faded_mask,
    profile_fade,
)
from inference_server.faces.dlib_models import DlibFaceModels
from inference_server.faces.pose import head_pose
from inference_server.faces.sources import prepare_sources
from inference_server.pipeline import render as render_module
from inference_server.pipeline.frames import FramePlate
from inference_server.pipeline.render import (
    FrameOutcome,
    RenderRequest,
    RenderServices,
    render_faces,
)
from inference_server.pipeline.settings import RenderSettings
from inference_server.pipeline.targets import FaceTarget
from inference_server.pipeline.timing import Stopwatch
from inference_server.server.messages import face_qc
from inference_server.store.shot_db import ShotDatabase
from inference_server.temporal.analyse import AnalyseConfig, ShotAnalyser

TARGET, SOURCE = "lp_d9.jpg", "fr_obama.jpg"


def _ellipsoid(landmarks: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Centre, half width and half height of the head ellipsoid around a face's landmarks."""
    lo, hi = landmarks.min(axis=0), landmarks.max(axis=0)
    return (lo + hi) / 2.0, 0.6 * float(hi[0] - lo[0]), 0.8 * float(hi[1] - lo[1])


def _turned_x(x: np.ndarray, y: np.ndarray | float, landmarks: np.ndarray, degrees: float) -> np.ndarray:
    centre, a, b = _ellipsoid(landmarks)
    u, v = (x - centre[0]) / a, (y - centre[1]) / b
    depth = a * np.sqrt(np.clip(1.0 - u * u - v * v, 0.0, None))
    t = math.radians(degrees)
    return centre[0] + (x - centre[0]) * math.cos(t) + depth * math.sin(t)


def turned_landmarks(landmarks: np.ndarray, degrees: float) -> np.ndarray:
    out = np.array(landmarks, np.float64)
    out[:, 0] = _turned_x(out[:, 0], out[:, 1], landmarks, degrees)
    return out.astype(np.float32)


def turned_image(rgb8: np.ndarray, landmarks: np.ndarray, degrees: float) -> np.ndarray:
    """The photo with the head turned (rows resampled; the far side of the head hidden)."""
    h, w = rgb8.shape[:2]
    xs = np.arange(w, dtype=np.float64)
    map_x = np.empty((h, w), np.float32)
    for y in range(h):
        forward = np.maximum.accumulate(_turned_x(xs, float(y), landmarks, degrees))
        map_x[y] = np.interp(xs, forward, xs)
    map_y = np.repeat(np.arange(h, dtype=np.float32)[:, None], w, axis=1)
    return np.ascontiguousarray(cv2.remap(rgb8, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))


# -- the fade function ------------------------------------------------------------------------------------
def test_the_fade_is_exactly_one_below_the_start_and_zero_beyond_the_end() -> None:
    for yaw in np.linspace(-FADE_START, FADE_START, 161):
        assert profile_fade(float(yaw)) == 1.0
    for yaw in (FADE_END, FADE_END + 0.01, 90.0, 180.0, -FADE_END, -120.0):
        assert profile_fade(yaw) == 0.0
    assert profile_fade(float("nan")) == 1.0
    assert 0.0 < profile_fade(FADE_START + 0.5) < 1.0 and 0.0 < profile_fade(-(FADE_END - 0.5)) < 1.0
    with pytest.raises(ValueError):
        profile_fade(10.0, start=50.0, end=50.0)
    mask = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    assert faded_mask(mask, 1.0) is mask
    np.testing.assert_array_equal(faded_mask(mask, 0.0), np.zeros_like(mask))


def test_the_fade_changes_smoothly_when_the_yaw_does() -> None:
    step = 0.5  # degrees per frame
    yaws = np.arange(0.0, 90.0 + step, step)
    fades = np.array([profile_fade(float(y)) for y in yaws])
    assert np.all(np.diff(fades) <= 0.0), "the fade never comes back while the head keeps turning"
    steepest = 1.5 / (FADE_END - FADE_START)
    assert np.abs(np.diff(fades)).max() <= steepest * step + 1e-9
    # and no kink where it starts: the first steps are small
    first = np.flatnonzero(fades < 1.0)[0]
    assert fades[first - 1] - fades[first] < 0.1 * steepest * step


# -- a render through the turn ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def turn(faces_dir: Path, dlib_models: DlibFaceModels) -> tuple[np.ndarray, np.ndarray, list]:
    rgb8 = cv2.resize(load_rgb8(faces_dir / TARGET), None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    (face,) = dlib_models.detect(rgb8)
    sources = prepare_sources([(SOURCE, load_rgb8(faces_dir / SOURCE))], dlib_models)
    return srgb8_to_linear(rgb8), face.landmarks, sources


def _render(plate: np.ndarray, landmarks: np.ndarray, sources: list, models: DlibFaceModels) -> FrameOutcome:
    lo, hi = landmarks.min(axis=0), landmarks.max(axis=0)
    target = FaceTarget(landmarks, (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])), track=0)
    request = RenderRequest([target], sources, [SOURCE], RenderSettings(quality_checks=False), "profile")
    return render_faces(FramePlate(plate, [0, 1, 2], "plate"), request, RenderServices(models, None, None),
                        Stopwatch())


def test_a_head_turning_to_profile_hands_over_to_the_plate_without_a_pop(
        turn, dlib_models: DlibFaceModels, monkeypatch: pytest.MonkeyPatch) -> None:
    plate, landmarks, sources = turn
    degrees = np.arange(30.0, 84.0, 3.0)
    frames = [turned_landmarks(landmarks, float(d)) for d in degrees]
    yaws = [abs(head_pose(f)[0]) for f in frames]
    assert yaws[0] < FADE_START and yaws[-1] > FADE_END and np.all(np.diff(yaws) > 0), yaws
    outcomes = [_render(plate, f, sources, dlib_models) for f in frames]
    with monkeypatch.context() as patch:  # the same turn with no hand-over
        patch.setattr(render_module, "profile_fade", lambda yaw: 1.0)
        unfaded = [_render(plate, f, sources, dlib_models) for f in frames]
    change = np.array([np.abs(o.pixels - plate).sum() for o in outcomes])
    full = np.array([np.abs(o.pixels - plate).sum() for o in unfaded])
    for yaw, out, ref in zip(yaws, outcomes, unfaded):
        # the per-face report says how far the swap faded, on the wire and in the client's report too
        assert out.faces[0].profile_fade == 1.0 - profile_fade(yaw) and ref.faces[0].profile_fade == 0.0
        assert _face_dict(face_qc(out.faces[0]))["profile_fade"] == round(1.0 - profile_fade(yaw), 3)
        if yaw <= FADE_START:
            assert np.array_equal(out.pixels, ref.pixels), "a face below the start angle keeps exactly its pixels"
        if yaw >= FADE_END:
            assert np.array_equal(out.pixels, plate) and not out.faces[0].swapped, "beyond the end: the plate"
    steps = np.abs(np.diff(change)) / change[0]
    print("\nyaw", np.round(yaws, 1), "\nchange", np.round(change / change[0], 3),
          "\nunfaded", np.round(full / change[0], 3))
    assert steps.max() < 0.25, f"a frame-to-frame jump of {steps.max():.2f} of the frontal change"
    # without the hand-over the swap still paints the face beyond the end angle, where dlib's landmarks give out
    assert max(f for f, y in zip(full, yaws) if y >= FADE_END) > 0.1 * full[0]
    # a hard switch at any angle of the fade would jump by more than the bound
    inside = [i for i, y in enumerate(yaws) if FADE_START < y < FADE_END]
    assert inside and max(full[i] for i in inside) / change[0] > 0.25


# -- tracking through the turn ------------------------------------------------------------------------------
def test_a_head_turning_away_keeps_its_track_id(faces_dir: Path, dlib_models: DlibFaceModels, tmp_path: Path) -> None:
    rgb8 = cv2.resize(load_rgb8(faces_dir / TARGET), None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    (face,) = dlib_models.detect(rgb8)
    degrees = range(0, 58, 2)
    frames = [turned_image(rgb8, face.landmarks, d) for d in degrees]

    def analyse(db: str, max_missed: int | None) -> list:
        analyser = ShotAnalyser(ShotDatabase(tmp_path / db), "turn", dlib_models, AnalyseConfig(),
                                max_missed=max_missed)
        return [analyser.analyse(1001 + i, f, hashlib.sha256(f.tobytes()).hexdigest()) for i, f in enumerate(frames)]

    results = analyse("a.sqlite", None)
    assert {r.cut for r in results} == {0}
    tracks = {o.track for r in results for o in r.observations}
    assert tracks == {0}, "one head, one track id through the turn"
    seen = [d for d, r in zip(degrees, results) if r.observations]
    assert seen == list(degrees[:len(seen)]) and seen[-1] >= 50, f"followed to {seen[-1]} degrees"
    origins = {o.origin for r in results for o in r.observations}
    assert "cnn" in origins, "the CNN fallback finds the turned head HOG misses"
    assert any(r.keyframe and r.observations and r.observations[0].origin == "track" for r in results)
    dropped = analyse("b.sqlite", 0)
    assert len([r for r in dropped if r.observations]) < len(seen), "without bridging the track ends sooner"
