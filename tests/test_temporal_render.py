"""The temporal engine end to end: analysis, smoothed tracks, cache, compositing controls, determinism."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support import linear_to_srgb8, make_sequence, read_exr, same_bits

from facebridge.client.grpc_client import FaceBridgeClient, FrameJob
from facebridge.client.sequence import parse_pattern

CLI = [sys.executable, "-m", "facebridge"]
FRAMES = 8


@pytest.fixture(scope="module")
def clip(faces_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_sequence(faces_dir / "lp_d18.mp4", tmp_path_factory.mktemp("clip"), FRAMES, start=40)


def _jobs(pattern: str, out_folder: Path, frames: list[int]) -> list[FrameJob]:
    p = parse_pattern(pattern)
    return [FrameJob(f, p.path(f), str(out_folder / f"out.{f:04d}.exr")) for f in frames]


def _cli(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(CLI + args, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
                          env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg")})


def test_reverse_order_one_process_per_frame_cold_cache_is_bit_identical(clip: str, faces_dir: Path,
                                                                        tmp_path: Path) -> None:
    source = str(faces_dir / "fr_obama.jpg")
    forward = _cli(["process", "--source", source, "--input", clip, "--output", str(tmp_path / "fwd" / "o.####.exr"),
                    "--cache-dir", str(tmp_path / "cache_fwd"), "--progress", "none", "--shot", "det"], tmp_path)
    assert forward.returncode == 0, forward.stderr
    frames = list(range(1001, 1001 + FRAMES))
    for frame in reversed(frames[::2]):  # every other frame, in reverse, each in its own process and cache
        # (stabilisation is on by default, so each frame also depends on its neighbours' results)
        single = _cli(["process", "--source", source, "--input", clip, "--frames", str(frame), "--output",
                       str(tmp_path / "rev" / "o.####.exr"), "--cache-dir", str(tmp_path / f"cache_{frame}"),
                       "--progress", "none", "--shot", "det"], tmp_path)
        assert single.returncode == 0, single.stderr
    for frame in frames[::2]:
        a, _ = read_exr(tmp_path / "fwd" / f"o.{frame:04d}.exr")
        b, _ = read_exr(tmp_path / "rev" / f"o.{frame:04d}.exr")
        assert same_bits(a, b).all(), f"frame {frame} differs between the forward and the per-frame render"


def test_blend_change_recomposites_from_cache_and_regions_keep_the_mouth(
    client: FaceBridgeClient, clip: str, faces_dir: Path, dlib_models, tmp_path: Path
) -> None:
    frames = list(range(1001, 1001 + FRAMES))
    shot = "regions-and-cache"
    analysis_jobs = _jobs(clip, tmp_path, frames)
    session = client.open_session([faces_dir / "fr_obama.jpg"], shot=shot)
    analysis = list(client.analyse(session.session_id, analysis_jobs))
    assert all(a.status == "ok" for a in analysis) and {tuple(a.tracks) for a in analysis} == {(0,)}
    first = list(client.process(session.session_id, _jobs(clip, tmp_path / "a", frames[:2])))
    assert all(o.analysed for o in first) and first[0].faces[0]["cache"] == "miss"
    # (frame 1002's model output was already computed as frame 1001's stabilisation neighbour)

    lighter = client.open_session([faces_dir / "fr_obama.jpg"], shot=shot, blend=0.5)
    second = list(client.process(lighter.session_id, _jobs(clip, tmp_path / "b", frames[:2])))
    assert all(o.faces[0]["cache"] == "hit" and "model" not in o.timings_ms for o in second)
    full, _ = read_exr(tmp_path / "a" / "out.1001.exr")
    half, _ = read_exr(tmp_path / "b" / "out.1001.exr")
    plate, _ = read_exr(Path(parse_pattern(clip).path(1001)))
    changed = ~same_bits(full, plate).all(axis=2)
    assert np.allclose(half[changed][:, :3], 0.5 * (full[changed][:, :3] + plate[changed][:, :3]), atol=2e-3)

    no_mouth = client.open_session([faces_dir / "fr_obama.jpg"], shot=shot, regions={"mouth": 0.0})
    list(client.process(no_mouth.session_id, _jobs(clip, tmp_path / "c", frames[:1])))
    out, _ = read_exr(tmp_path / "c" / "out.1001.exr")
    landmarks = dlib_models.detect(linear_to_srgb8(plate[..., :3]))[0].landmarks
    mouth = np.zeros(plate.shape[:2], bool)
    import cv2

    cv2.fillPoly(mouth.view(np.uint8), [landmarks[48:60].astype(np.int32)], 1)
    eyes = np.zeros(plate.shape[:2], np.uint8)
    for eye in (landmarks[36:42], landmarks[42:48]):
        cv2.fillPoly(eyes, [eye.astype(np.int32)], 1)
    assert same_bits(out[mouth], plate[mouth]).all(), "the mouth must be the plate with mouth=0"
    assert (~same_bits(out[eyes > 0], plate[eyes > 0])).any(axis=1).mean() > 0.5, "the eyes must still change"
    for s in (session, lighter, no_mouth):
        client.close_session(s.session_id)


def test_killed_server_resumes_the_analysis(clip: str, tmp_path: Path) -> None:
    cache = tmp_path / "cache"

    def start() -> tuple[subprocess.Popen[str], str]:
        proc = subprocess.Popen(CLI + ["serve", "--port", "0", "--device", "cpu", "--cache-dir", str(cache)],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert proc.stdout is not None  # a pipe
        line = proc.stdout.readline()
        return proc, line.split()[3]

    proc, address = start()
    jobs = _jobs(clip, tmp_path, list(range(1001, 1001 + FRAMES)))
    with FaceBridgeClient(address) as c:
        session = c.open_session([], shot="killed")
        seen = 0
        for _ in c.analyse(session.session_id, jobs):
            seen += 1
            if seen == 4:
                os.kill(proc.pid, signal.SIGKILL)
                break
    proc.wait(30)
    proc, address = start()
    try:
        with FaceBridgeClient(address) as c:
            session = c.open_session([], shot="killed")
            outcomes = list(c.analyse(session.session_id, jobs))
    finally:
        proc.terminate()
        proc.wait(30)
    assert len(outcomes) == FRAMES and all(o.status == "ok" for o in outcomes)
    replayed = sum(o.replayed for o in outcomes)
    assert 4 <= replayed < FRAMES, f"{replayed} frames replayed from the committed analysis"


def test_face_selection_by_track_and_by_reference_identity(
    client: FaceBridgeClient, faces_dir: Path, dlib_models, tmp_path: Path
) -> None:
    from support import make_plate

    plate, _ = make_plate(faces_dir / "fr_two_people.jpg", tmp_path / "two.exr", dlib_models, aovs=False)
    job = [FrameJob(1, str(plate), str(tmp_path / "unused.exr"))]
    shot = "two-people"
    analysis = client.open_session([], shot=shot)
    (result,) = list(client.analyse(analysis.session_id, job))
    assert sorted(result.tracks) == [0, 1]

    def swapped_boxes(**params: Any) -> list[list[float]]:
        session = client.open_session([faces_dir / "lp_d12.jpg"], shot=shot, **params)
        out = tmp_path / f"out_{len(list(tmp_path.iterdir()))}.exr"
        (outcome,) = list(client.process(session.session_id, [FrameJob(1, str(plate), str(out))]))
        client.close_session(session.session_id)
        return [f["box"] for f in outcome.faces if f["swapped"]]

    assert len(swapped_boxes()) == 2
    by_reference = swapped_boxes(face=f"ref:{faces_dir / 'fr_biden2.jpg'}")
    assert len(by_reference) == 1 and by_reference[0][0] > 600, "the face on the right is the reference's identity"
    other = swapped_boxes(face=f"ref:{faces_dir / 'fr_obama.jpg'}")
    assert len(other) == 1 and other[0][0] < 600
    (only,) = [f for f in swapped_boxes(face="track:1")]
    assert only in (by_reference[0], other[0])
