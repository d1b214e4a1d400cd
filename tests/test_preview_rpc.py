"""The Preview and ListShots RPCs: re-composites from the cache, the same pixels as ProcessFrames, shared
geometry for two parameter sets, the plate at the same size, small messages and mapped errors."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from support import make_sequence, read_exr

from facebridge.client.errors import ClientError
from facebridge.client.grpc_client import FaceBridgeClient, FrameJob
from facebridge.settings import RenderParams
from facebridge.client.sequence import parse_pattern

SHOT = "preview-rpc"
FRAMES = [1001, 1002, 1003]
FAST = RenderParams(stabilise=0.0)


@pytest.fixture(scope="module")
def clip(faces_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_sequence(faces_dir / "lp_d18.mp4", tmp_path_factory.mktemp("preview-clip"), len(FRAMES), start=40)


@pytest.fixture(scope="module")
def analysed(server_address: str, clip: str, faces_dir: Path) -> str:
    """Open a session on the analysed shot; returns the session id (the shot is analysed once per module)."""
    pattern = parse_pattern(clip)
    with FaceBridgeClient(server_address) as c:
        session = c.open_session([faces_dir / "fr_obama.jpg"], shot=SHOT, params=FAST)
        outcomes = list(c.analyse(session.session_id, [FrameJob(f, pattern.path(f), "") for f in FRAMES],
                                  use_paths=True))
        assert all(o.status == "ok" for o in outcomes)
        return session.session_id


def _plate(clip: str, frame: int) -> str:
    return parse_pattern(clip).path(frame)


def test_preview_is_a_recomposite_and_equals_the_processed_frame(
    client: FaceBridgeClient, analysed: str, clip: str, faces_dir: Path, tmp_path: Path
) -> None:
    cold = client.preview(analysed, 1001, input_path=_plate(clip, 1001), region="frame", max_side=4096)
    assert cold.status == "ok" and cold.analysed and "model" in cold.timings_ms
    half = replace(FAST, blend=0.5, regions={"mouth": 0.0})
    warm = client.preview(analysed, 1001, input_path=_plate(clip, 1001), region="frame", max_side=4096,
                          params=half, quality_checks=False, include_plate=True)
    assert all(f["cache"] == "hit" for f in warm.faces) and warm.faces
    assert "model" not in warm.timings_ms, warm.timings_ms  # no model ran: a re-composite from the cache

    # the knobs are the whole truth: the same parameters through ProcessFrames give the same pixels
    session = client.open_session([faces_dir / "fr_obama.jpg"], shot=SHOT, params=half, quality_checks=False)
    out = tmp_path / "out.1001.exr"
    (outcome,) = list(client.process(session.session_id, [FrameJob(1001, _plate(clip, 1001), str(out))]))
    client.close_session(session.session_id)
    assert outcome.status == "ok"
    processed, _ = read_exr(out)
    assert warm.rendered is not None and warm.rendered.shape == processed[..., :3].shape
    assert np.array_equal(warm.rendered.astype(np.float32), processed[..., :3].astype(np.float16).astype(np.float32))
    plate, _ = read_exr(Path(_plate(clip, 1001)))
    assert warm.plate is not None and np.array_equal(warm.plate.astype(np.float32), plate[..., :3])
    assert warm.box == (0, 0, 480, 480) and warm.frame_size == (480, 480)
    assert cold.rendered is not None
    assert not np.array_equal(warm.rendered, cold.rendered), "blend and regions change the preview"


def test_faces_region_is_shared_by_parameter_sets_and_overlays_line_up(
    client: FaceBridgeClient, analysed: str, clip: str
) -> None:
    a = client.preview(analysed, 1002, input_path=_plate(clip, 1002), max_side=160, include_plate=True,
                       include_regions=True, params=FAST)
    b = client.preview(analysed, 1002, input_path=_plate(clip, 1002), max_side=160,
                       params=replace(FAST, face="track:7", blend=0.3))
    assert a.rendered is not None and a.plate is not None and b.rendered is not None
    assert a.box == b.box and a.rendered.shape == b.rendered.shape == a.plate.shape
    x0, y0, x1, y1 = a.box
    assert 0 <= x0 < x1 <= 480 and 0 <= y0 < y1 <= 480  # (this clip's face fills most of the frame)
    assert max(a.rendered.shape[:2]) <= 160
    assert b.status == "warning" and not b.faces, "no track 7: nothing rendered, the plate comes back"
    assert b.labels is None, "the region overlay only when asked for"
    assert np.array_equal(b.rendered, a.plate)
    (face,) = a.faces
    landmarks = face["landmarks"]
    assert landmarks.shape == (68, 2) and face["track"] == 0
    assert (landmarks >= (x0, y0)).all() and (landmarks < (x1, y1)).all()
    assert face["identity_distance"] is not None and face["jitter_raw"] is not None
    labels = a.labels
    assert labels is not None and a.region_names[3] == "mouth"
    # the mouth label sits where the mouth landmarks are (mapped with the response's geometry)
    h, w = labels.shape
    mouth = landmarks[48:68].mean(axis=0)
    u = int((mouth[0] - x0 + 0.5) * w / (x1 - x0) - 0.5 + 0.5)
    v = int((mouth[1] - y0 + 0.5) * h / (y1 - y0) - 0.5 + 0.5)
    assert labels[v, u] == 1 + a.region_names.index("mouth")
    changed = np.any(a.rendered != a.plate, axis=2)
    assert changed.any() and not changed[0].any(), "outside the face the preview is the plate"


def test_plate_bytes_give_the_same_preview_as_a_path_and_messages_stay_small(
    client: FaceBridgeClient, analysed: str, clip: str
) -> None:
    path = _plate(clip, 1003)
    by_path = client.preview(analysed, 1003, input_path=path, params=FAST, quality_checks=False, max_side=4096)
    by_bytes = client.preview(analysed, 1003, data=Path(path).read_bytes(), name="plate.1003.exr", params=FAST,
                              quality_checks=False, max_side=4096)
    assert by_path.rendered is not None and by_bytes.rendered is not None
    assert np.array_equal(by_path.rendered, by_bytes.rendered) and by_path.box == by_bytes.box
    big = np.zeros((4000, 4000, 3), np.float16)
    from inference_server.pipeline.crops import Box
    from inference_server.pipeline.preview import MAX_IMAGE_BYTES, preview_size

    w, h = preview_size(Box(0, 0, 4000, 4000), 4096)
    assert w * h * 3 * big.itemsize <= MAX_IMAGE_BYTES < 4 * 1024 * 1024


def test_list_shots_reports_the_analysed_range_tracks_and_jitter(client: FaceBridgeClient, analysed: str) -> None:
    (shot,) = client.list_shots(SHOT, with_frames=True)
    assert (shot.first_frame, shot.last_frame, shot.frames) == (1001, 1003, 3)
    assert shot.tracks == [0] and shot.cuts == 1 and shot.keyframes >= 1
    assert [f["frame"] for f in shot.frame_summaries] == FRAMES
    assert all(f["tracks"] == [0] for f in shot.frame_summaries)
    assert shot.frame_summaries[1]["jitter_raw"] is not None  # an inner frame has a second difference
    assert SHOT in {s.shot for s in client.list_shots()}
    assert client.list_shots("no-such-shot") == []


def test_preview_errors_are_mapped(client: FaceBridgeClient, analysed: str, clip: str, tmp_path: Path) -> None:
    with pytest.raises(ClientError, match="no open session"):
        client.preview("nope", 1001, input_path=_plate(clip, 1001))
    with pytest.raises(ClientError, match="face selection"):
        client.preview(analysed, 1001, input_path=_plate(clip, 1001), params=replace(FAST, face="ref:x.png"))
    missing = client.preview(analysed, 1001, input_path=str(tmp_path / "missing.exr"))
    assert missing.failed and "missing.exr" in missing.message and missing.rendered is None


def test_faces_region_and_preview_size_geometry() -> None:
    from inference_server.pipeline.crops import Box, face_crop_box
    from inference_server.pipeline.preview import faces_region, preview_size, to_preview_points

    assert faces_region([], (1080, 1920)) == Box(0, 0, 1920, 1080)
    left = np.array([[400 + 2 * (k % 10), 500 + 3 * (k // 10)] for k in range(68)], np.float32)
    right = left + (900, 40)
    box = faces_region([left, right], (1080, 1920))
    a, b = face_crop_box(left, (1080, 1920)), face_crop_box(right, (1080, 1920))
    assert box == Box(a.x0, min(a.y0, b.y0), b.x1, max(a.y1, b.y1))
    assert preview_size(Box(0, 0, 300, 200), 1024) == (300, 200), "never enlarged"
    assert preview_size(Box(0, 0, 2000, 1000), 1000) == (1000, 500)
    corners = to_preview_points(np.array([[-0.5, -0.5], [1999.5, 999.5]]), Box(0, 0, 2000, 1000), (1000, 500))
    assert np.allclose(corners, [[-0.5, -0.5], [999.5, 499.5]])  # pixel edges map to pixel edges
