"""Issue 13 item 4: one identity per track.

- An embedding-based swapper takes one identity made of every source photo: the mean of their raw
  embeddings (FaceFusion's ``average_face_identity``), the same for every face and frame.
- The classical swap takes one source photo per face; on an analysed shot the choice is made per track
  (:mod:`inference_server.temporal.source_plan`): segments of at least ``MIN_SEGMENT`` frames, switches
  cross-faded over ``CROSSFADE`` frames, never a switch from one frame to the next.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest
from onnx import helper, numpy_helper
from onnx_fixtures import _input, inswapper_emap, save_model
from support import load_rgb8, read_exr, srgb8_to_linear, write_exr
from test_profile_fade import turned_image

from facebridge.client.grpc_client import FaceBridgeClient, FrameJob
from facebridge.client.sequence import parse_pattern
from inference_server.faces.pose import pose_distance
from inference_server.faces.sources import SourceFace, prepare_sources
from inference_server.models.adapters import InswapperAdapter
from inference_server.models.identity import average_embedding, average_normed_embedding
from inference_server.models.onnx_swapper import InswapperSwapper, prepare_inswapper_source
from inference_server.pipeline.stages import AlignedSwapStage
from inference_server.temporal.source_plan import (CROSSFADE, MARGIN, MIN_SEGMENT, SourceMix, crossfaded, plan_sources,
                                                   pose_costs)

# -- the mean identity --------------------------------------------------------------------------------------


def test_the_mean_identity_is_the_mean_of_the_raw_embeddings() -> None:
    rng = np.random.default_rng(3)
    a, b, c = (rng.normal(size=512) * s for s in (1.0, 3.0, 0.5))
    np.testing.assert_array_equal(average_embedding([a]), a)
    np.testing.assert_allclose(average_embedding([a, b[None], c]), (a + b + c) / 3.0, rtol=1e-12)
    # the raw mean weighs a longer embedding more; the normalised mean weighs each photo alike
    normed = average_normed_embedding([a, b])
    np.testing.assert_allclose(normed, (a / np.linalg.norm(a) + b / np.linalg.norm(b)) / 2.0, rtol=1e-12)
    assert np.linalg.norm(normed) < 1.0
    for bad in ([], [a, a[:128]], [a, np.full(512, np.nan)]):
        with pytest.raises(ValueError):
            average_embedding(bad)
    with pytest.raises(ValueError):
        average_normed_embedding([a, np.zeros(512)])


def _inswapper_file(path: Path) -> Path:
    """A file with inswapper's inputs and an emap whose output depends on the source vector:
    ``target + 2 * mean(source)``."""
    nodes = [helper.make_node("ReduceMean", ["source"], ["m"], keepdims=1),
             helper.make_node("Mul", ["m", "k"], ["mk"]),
             helper.make_node("Add", ["target", "mk"], ["output"])]
    graph = helper.make_graph(nodes, "inswapper_like", [_input("target", [1, 3, 128, 128]), _input("source", [1, 512])],
                              [_input("output", [1, 3, 128, 128])],
                              [numpy_helper.from_array(np.full((1, 1), 2.0, np.float32), "k"),
                               numpy_helper.from_array(inswapper_emap(), "emap")])
    return save_model(graph, path)


@pytest.fixture(scope="module")
def two_sources(faces_dir: Path, dlib_models) -> list[SourceFace]:
    return prepare_sources([("obama", load_rgb8(faces_dir / "fr_obama.jpg")),
                            ("biden", load_rgb8(faces_dir / "fr_biden2.jpg"))], dlib_models)


def test_an_aligned_swapper_takes_one_identity_from_every_source(two_sources: list[SourceFace],
                                                                  tmp_path: Path) -> None:
    swapper = InswapperSwapper(_inswapper_file(tmp_path / "inswapper_like.onnx"), "cpu")
    adapter = InswapperAdapter(swapper, None, "inswapper_like")  # (stand-in raw embeddings: dlib's, tiled)
    raws = [np.tile(s.embedding.astype(np.float32), 4) for s in two_sources]
    expected = prepare_inswapper_source(average_embedding(raws), swapper.emap)
    np.testing.assert_array_equal(adapter.source_vector(two_sources), expected)
    np.testing.assert_array_equal(adapter.source_vector(two_sources[:1]), adapter.source_vector(two_sources[0]))
    assert not np.array_equal(adapter.source_vector(two_sources[:1]), expected)

    stage = AlignedSwapStage(adapter)
    assert stage.one_identity
    crop = np.random.default_rng(0).uniform(0.2, 0.8, (200, 180, 3)).astype(np.float32)
    landmarks = two_sources[0].landmarks * 0.5 + np.array([30.0, 20.0], np.float32)
    runs = [stage.run(crop, landmarks, s, 0.0, two_sources) for s in two_sources]
    for key in runs[0]:  # the face's pose-chosen source does not matter: one identity
        np.testing.assert_array_equal(runs[0][key], runs[1][key])
    alone = stage.run(crop, landmarks, two_sources[0])
    assert not np.array_equal(alone["delta"], runs[0]["delta"])


# -- the per-track plan -------------------------------------------------------------------------------------

SOURCES = [(0.0, -5.0, 0.0), (8.0, -5.0, 0.0)]


def _weights(plan: tuple[SourceMix, ...], count: int) -> np.ndarray:
    """(T, S) weight of each source per frame."""
    out = np.zeros((len(plan), count))
    for t, mix in enumerate(plan):
        out[t, mix.first] += 1.0 - mix.weight
        out[t, mix.second] += mix.weight
    return out


def _check_plan(plan: tuple[SourceMix, ...], count: int, min_segment: int = MIN_SEGMENT) -> np.ndarray:
    weights = _weights(plan, count)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    steps = np.abs(np.diff(weights, axis=0)).max(axis=1) if len(plan) > 1 else np.zeros(0)
    assert (steps <= 1.5 / CROSSFADE + 1e-9).all(), f"a source switch without a cross-fade: step {steps.max()}"
    held = [mix.first for mix in plan if not mix.blended]
    runs = np.split(np.asarray(held), np.flatnonzero(np.diff(held)) + 1) if held else []
    if len(runs) > 1:
        assert min(len(r) for r in runs) >= min_segment - CROSSFADE, [len(r) for r in runs]
    return weights


def test_a_pose_jittering_around_the_midpoint_switches_rarely_and_never_abruptly() -> None:
    rng = np.random.default_rng(1)
    yaw = 4.0 + rng.normal(0.0, 1.5, 60)  # around the midpoint of the two sources' yaws
    poses = np.stack([yaw, np.full(60, -5.0)], axis=1)
    nearest = np.argmin(pose_costs(poses, SOURCES), axis=1)
    flicker = np.count_nonzero(np.diff(nearest))
    assert flicker >= 20, "frame by frame, the choice flickers"
    plan = plan_sources(poses, SOURCES)
    _check_plan(plan, 2)
    starts = [t for t in range(1, len(plan)) if plan[t].blended and not plan[t - 1].blended]
    assert 1 <= len(starts) <= len(plan) // MIN_SEGMENT, starts
    assert plan == plan_sources(poses.copy(), list(SOURCES)), "deterministic"


def test_a_turn_from_one_source_pose_to_the_other_switches_once_with_a_cross_fade() -> None:
    yaw = np.linspace(-2.0, 10.0, 50)
    poses = np.stack([yaw, np.full(50, -5.0)], axis=1)
    plan = plan_sources(poses, SOURCES)
    weights = _check_plan(plan, 2)
    assert plan[0] == SourceMix(0, 0) and plan[-1] == SourceMix(1, 1)
    fading = [t for t, mix in enumerate(plan) if mix.blended]
    assert len(fading) == CROSSFADE and fading == list(range(fading[0], fading[0] + CROSSFADE))
    assert np.all(np.diff(weights[:, 1]) >= 0.0), "the second source's weight only grows through the turn"
    # the hysteresis margin moves the switch past the midpoint (yaw 4) in the direction of the turn
    switch = fading[0] + CROSSFADE // 2
    assert 4.0 < yaw[switch] <= 4.0 + MARGIN / 2 + (yaw[1] - yaw[0])


def test_short_tracks_missing_poses_and_one_source() -> None:
    yaw = np.array([0.0, 8.0, 9.0, 9.0, 9.0, 9.0])  # shorter than MIN_SEGMENT: one source throughout
    plan = plan_sources(np.stack([yaw, np.full(6, -5.0)], axis=1), SOURCES)
    assert len({(m.first, m.second) for m in plan}) == 1 and not any(m.blended for m in plan)
    poses = np.stack([np.linspace(-2.0, 10.0, 40), np.full(40, -5.0)], axis=1)
    poses[18:24] = np.nan  # no landmarks on a few frames: the nearest frame's pose stands in
    _check_plan(plan_sources(poses, SOURCES), 2)
    assert plan_sources(poses, SOURCES[:1]) == tuple(SourceMix(0, 0) for _ in range(40))
    assert crossfaded(np.array([0] * 10 + [1] * 10), 1)[10] == SourceMix(1, 1), "crossfade 1: a hard switch"
    with pytest.raises(ValueError):
        plan_sources(poses, [])


# -- a real clip through the server -------------------------------------------------------------------------

FRAMES = 36
START = 30


@pytest.fixture(scope="module")
def clip(faces_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """lp_d18.mp4's frames START.. as linear EXR plates at half size (240 px, a ~100 px face: quicker)."""
    folder = tmp_path_factory.mktemp("clip")
    capture = cv2.VideoCapture(str(faces_dir / "lp_d18.mp4"))
    for index in range(START + FRAMES):
        ok, frame = capture.read()
        assert ok, "lp_d18.mp4 ran out of frames"
        if index >= START:
            small = cv2.resize(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), None, fx=0.5, fy=0.5,
                               interpolation=cv2.INTER_AREA)
            write_exr(folder / f"plate.{1001 + index - START:04d}.exr", srgb8_to_linear(small), ("R", "G", "B"))
    return str(folder / "plate.####.exr")


@pytest.fixture(scope="module")
def turned_source(faces_dir: Path, dlib_models, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fr_obama.jpg with the head turned a little (its measured yaw ~5.2 degrees, the photo's ~1.4)."""
    rgb = load_rgb8(faces_dir / "fr_obama.jpg")
    (face,) = dlib_models.detect(rgb)[:1]
    path = tmp_path_factory.mktemp("turned") / "obama_turned.png"
    cv2.imwrite(str(path), cv2.cvtColor(turned_image(rgb, face.landmarks, 7.0), cv2.COLOR_RGB2BGR))
    return path


def _jobs(pattern: str, out: Path, frames: list[int]) -> list[FrameJob]:
    p = parse_pattern(pattern)
    return [FrameJob(f, p.path(f), str(out / f"out.{f:04d}.exr")) for f in frames]


def _face_zone(plate_rgb: np.ndarray, after: np.ndarray) -> np.ndarray:
    return np.abs(after - plate_rgb).max(axis=2) > 1e-4


def test_two_source_poses_on_a_real_clip_switch_only_with_a_cross_fade(
        client: FaceBridgeClient, clip: str, faces_dir: Path, turned_source: Path, tmp_path: Path) -> None:
    frames = list(range(1001, 1001 + FRAMES))
    shot = "two-poses"
    sources = [faces_dir / "fr_obama.jpg", turned_source]
    session = client.open_session(sources, shot=shot, stabilise=0.0, quality_checks=False)
    table = np.array([[s["yaw"], s["pitch"], s["roll"]] for s in session.sources], np.float64)
    poses = [(float(y), float(p), float(r)) for y, p, r in table]
    assert pose_distance(poses[0], poses[1]) > 1.5, poses
    labels = [str(s["label"]) for s in session.sources]
    assert all(a.status == "ok" for a in client.analyse(session.session_id, _jobs(clip, tmp_path, frames)))
    results = list(client.process(session.session_id, _jobs(clip, tmp_path / "mix", frames)))
    assert all(r.analysed and len(r.faces) == 1 for r in results)
    faces = [r.faces[0] for r in results]

    # frame by frame, the pose-nearest source would switch back and forth (a pop each time)
    nearest = [min(range(2), key=lambda i: (pose_distance(poses[i], (f["pose"]["yaw"], f["pose"]["pitch"], 0.0)), i)) for f in faces]
    assert np.count_nonzero(np.diff(nearest)) >= 1, nearest

    # the track's plan: weights per frame from the per-face report, never a jump
    weights = np.array([[dict(f["source_weights"]).get(label, 0.0) for label in labels] for f in faces])
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-3)
    steps = np.abs(np.diff(weights, axis=0)).max(axis=1)
    assert steps.max() <= 1.5 / CROSSFADE + 1e-3, steps
    fade = [i for i, w in enumerate(weights) if 0.0 < w.min()]
    assert fade, "the clip's head turns past the midpoint of the two photos: one cross-fade"
    for face in faces:
        assert face["source"] == labels[int(np.argmax([dict(face["source_weights"]).get(x, 0.0) for x in labels]))]

    # pixels: each fade frame is the mix of the two single-source renders; the step at the switch stays small
    around = [frames[i] for i in range(max(0, fade[0] - 1), min(FRAMES, fade[-1] + 2))]
    singles = []
    for k, source in enumerate(sources):
        alone = client.open_session([source], shot=shot, stabilise=0.0, quality_checks=False)
        list(client.process(alone.session_id, _jobs(clip, tmp_path / f"s{k}", around)))
        singles.append({f: read_exr(tmp_path / f"s{k}" / f"out.{f:04d}.exr")[0][..., :3] for f in around})
    mix = {f: read_exr(tmp_path / "mix" / f"out.{f:04d}.exr")[0][..., :3] for f in around}
    plate = {f: read_exr(Path(parse_pattern(clip).path(f)))[0][..., :3] for f in around}
    zone = np.logical_or.reduce([_face_zone(plate[f], s[f]) for f in around for s in singles])
    for f in around:
        w = weights[frames.index(f)]
        expected = w[0] * singles[0][f] + w[1] * singles[1][f]
        np.testing.assert_allclose(mix[f][zone], expected[zone], atol=4e-3, rtol=4e-3)

    # the frame-to-frame change of the face through the fade stays within the head's own motion (either
    # source's render alone) plus a fraction of the two sources' difference; a switch from one frame to the
    # next would add all of that difference at once
    def change(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.abs(a - b)[zone].mean())

    for prev, nxt in itertools.pairwise(around):
        motion = max(change(s[nxt], s[prev]) for s in singles)
        gap = change(singles[1][nxt], singles[0][nxt])
        step, hard = change(mix[nxt], mix[prev]), change(singles[1][nxt], singles[0][prev])
        assert step <= motion + 0.3 * gap, (prev, step, motion, gap)
        if np.argmax(weights[frames.index(prev)]) != np.argmax(weights[frames.index(nxt)]):
            assert hard > motion + 0.3 * gap, "at the switch, the bound tells a hard switch from the fade"
