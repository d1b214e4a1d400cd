"""The artist panel with pytest-qt (offscreen) against the real test server, on a short analysed shot.

A slider move reaches the server and updates the preview from the cache; stale replies never show;
presets and panel states round-trip; a screenshot's A and B halves differ where the parameters differ;
"Apply to node" hands a set to the node that opened the panel, as a preset file.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from support import make_sequence

pytest.importorskip("pytestqt")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from facebridge.client.grpc_client import FaceBridgeClient, FrameJob  # noqa: E402
from facebridge.client.params import load_preset  # noqa: E402
from facebridge.settings import RenderParams  # noqa: E402
from facebridge.client.sequence import parse_pattern  # noqa: E402
from ui.panel.state import Overlays, PanelState  # noqa: E402

SHOT = "panel-test"
FRAMES = [1001, 1002, 1003]
FAST = RenderParams(stabilise=0.0)


@pytest.fixture(scope="module")
def shot(server_address: str, faces_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> PanelState:
    """A 3-frame shot analysed on the test server; the state of a panel looking at it (no stabilisation)."""
    pattern = make_sequence(faces_dir / "lp_d18.mp4", tmp_path_factory.mktemp("panel-clip"), len(FRAMES), start=60)
    frames = parse_pattern(pattern)
    source = str(faces_dir / "fr_obama.jpg")
    with FaceBridgeClient(server_address) as c:
        session = c.open_session([source], shot=SHOT, params=FAST)
        assert all(o.status == "ok" for o in c.analyse(session.session_id,
                                                        [FrameJob(f, frames.path(f), "") for f in FRAMES]))
        c.close_session(session.session_id)
    return PanelState(server=server_address, shot=SHOT, input=pattern, sources=(source,), a=FAST,
                      b=replace(FAST, regions={"mouth": 0.0, "eyes": 0.0}), name_b="no mouth", view="side",
                      max_side=320, window=(1100, 720))


@pytest.fixture()
def panel(qtbot, shot: PanelState):
    from ui.panel.app import PanelWidget

    widget = PanelWidget(shot)
    qtbot.addWidget(widget)
    widget.resize(1100, 720)
    widget.show()
    assert widget.wait_until_ready(60), widget.errors
    yield widget
    widget.shutdown()


def test_slider_change_reaches_the_server_and_updates_the_preview(qtbot, panel, server_address: str) -> None:
    before = panel.viewer.shown.copy()
    first = panel.results["a"]
    assert panel.frames == FRAMES and panel.state.frame == 1001 and first.faces
    slider = panel.editors["a"].sliders["blend"]
    slider.setValue(300)  # as a click on the slider would (not dragging: a preview with QC follows at once)
    assert panel.state.a.blend == pytest.approx(0.3)
    qtbot.waitUntil(panel.is_ready, timeout=30000)
    reply = panel.results["a"]
    assert reply is not first and all(f["cache"] == "hit" for f in reply.faces)
    assert "model" not in reply.timings_ms, "a slider move is a re-composite from the cache, not a model run"
    assert not np.array_equal(panel.viewer.shown, before), "the preview follows the slider"
    with FaceBridgeClient(server_address) as c:  # what the server renders for blend 0.3
        session = panel.sessions.session_for(panel.state.a, panel.state.sources, SHOT)
        direct = c.preview(session, 1001, input_path=parse_pattern(panel.state.input).path(1001), max_side=320,
                           params=replace(FAST, blend=0.3))
    assert direct.rendered is not None
    assert np.array_equal(reply.rendered, direct.rendered)

    # while dragging, previews skip the identity QC; it comes once the slider rests
    slider.setSliderDown(True)
    slider.setValue(600)
    qtbot.waitUntil(lambda: panel.results["a"].rendered is not reply.rendered and panel.is_ready(), timeout=30000)
    assert all(f["identity_distance"] is None for f in panel.results["a"].faces)
    slider.setSliderDown(False)
    qtbot.waitUntil(lambda: panel.results["a"].faces[0]["identity_distance"] is not None, timeout=30000)


def test_signals_keep_the_reference_counts_of_true_and_false(qtbot) -> None:
    """PySide6 6.12.0 drops a reference to True/False on every emit of a Python-declared signal, and the
    panel emits one per slider move and reply: Python aborts after a few thousand (bool_dealloc)."""
    from ui.panel.qt import QtCore

    class Emitter(QtCore.QObject):
        moved = QtCore.Signal(object, bool)

    emitter = Emitter()
    emitter.moved.connect(lambda params, dragging: None)
    before = sys.getrefcount(True) + sys.getrefcount(False)
    for k in range(200):
        emitter.moved.emit(None, k % 2 == 0)
    lost = before - sys.getrefcount(True) - sys.getrefcount(False)
    assert lost < 20, f"{lost} references to True/False lost in 200 emits: a PySide6 with the refcount bug"


def test_stale_replies_are_dropped(qtbot) -> None:
    from ui.panel.requests import LatestWins, PreviewRequester

    gates = {k: threading.Event() for k in range(1, 8)}
    fetched: list[int] = []

    def fetch(job: int) -> int:
        fetched.append(job)
        assert gates[job].wait(10)
        return job

    requester = PreviewRequester(fetch)
    delivered: list[int] = []
    dropped: list[int] = []
    requester.replied.connect(lambda channel, seq, result: delivered.append(result))
    requester.dropped.connect(lambda channel, seq: dropped.append(seq))
    for job in (1, 2, 3):  # 1 goes out; 2 waits and is overtaken by 3: it is never sent
        requester.submit("a", job)
    gates[1].set()
    gates[3].set()
    qtbot.waitUntil(lambda: delivered == [1, 3], timeout=5000)
    assert fetched == [1, 3]

    requester.submit("a", 4)  # asked for the old frame...
    requester.invalidate()    # ...then the frame changed
    requester.submit("a", 5)
    gates[5].set()
    gates[4].set()
    qtbot.waitUntil(lambda: dropped == [4] and delivered == [1, 3, 5], timeout=5000)
    requester.close()

    book = LatestWins()  # replies coming back out of order: an older one never replaces a newer one
    assert book.submit("b", "x") == (1, (1, "x"))
    book.finish("b", 1)
    book.submit("b", "y")
    book.submit("c", "z")
    assert book.finish("b", 2) == (True, None)
    assert book.finish("b", 1)[0] is False


def test_frame_change_invalidates_and_view_modes_compose(qtbot, panel) -> None:
    a, b = panel.results["a"], panel.results["b"]
    w = a.rendered.shape[1]
    assert panel.viewer.shown.shape[1] == 2 * w + 4  # side by side with a gap
    panel.set_view("wipe")
    assert panel.viewer.shown.shape == a.rendered.shape
    panel.set_view("difference")
    diff = panel.viewer.shown
    changed = np.any(a.rendered != b.rendered, axis=2)
    assert changed.any() and (diff[~changed] == 0).all() and (diff[changed] > 0).any()
    panel.flip()
    assert np.array_equal(panel.viewer.shown, diff), "the difference does not depend on the order"
    panel.set_view("b")
    from ui.panel.display import view_srgb

    assert np.array_equal(panel.viewer.shown, view_srgb(a.rendered)), "flipped: B shows set A"
    panel.flip()
    panel.set_frame(1002)
    assert panel.results["a"].frame_number == 1001  # nothing for 1002 yet; the old replies are stale
    qtbot.waitUntil(panel.is_ready, timeout=30000)
    assert panel.results["b"].frame_number == 1002 and panel.strip.current == 1002
    panel.zoom_100()  # one screen pixel per plate pixel: the 320 px previews are enlarged
    x0, _, x1, _ = panel.results["a"].box
    expected = (x1 - x0) / panel.results["a"].rendered.shape[1]
    assert expected > 1.0 and panel.state.zoom == pytest.approx(expected)
    panel.viewer.zoom_to(0.0)
    assert panel.state.zoom == 0.0 and panel.state.pan == (0.0, 0.0)


def test_presets_and_state_round_trip(qtbot, panel, tmp_path: Path) -> None:
    path = tmp_path / "no_mouth.json"
    panel.save_set("b", path)
    assert load_preset(path) == panel.state.b
    panel.load_set("a", path)
    assert panel.state.a == panel.state.b and panel.editors["a"].params == panel.state.b
    assert panel.state.name_a == "no mouth" and panel.editors["a"].sliders["regions.mouth"].value() == 0

    state = replace(panel.state, overlays=Overlays(landmarks=True, regions=True), exposure=1.5, pan=(3.0, -2.0))
    assert PanelState.from_dict(state.to_dict()) == state
    saved = tmp_path / "state.json"
    state.save(saved)
    assert PanelState.load(saved) == state
    import json

    data = json.loads(saved.read_text())
    assert data["b"]["facebridge_preset"] == 1 and data["b"]["regions"] == {"eyes": 0.0, "mouth": 0.0}


def test_screenshot_a_and_b_halves_differ_where_the_parameters_differ(qtbot, shot: PanelState,
                                                                      tmp_path: Path) -> None:
    from ui.panel.app import PanelWindow, screenshot

    from ui.panel.qt import QtGui

    state = replace(shot, overlays=Overlays(tracks=False))
    window = PanelWindow(state)
    qtbot.addWidget(window)
    path = tmp_path / "side.png"
    assert screenshot(window, window.panel, path, 60)
    panel = window.panel
    image = QtGui.QImage(str(path)).convertToFormat(QtGui.QImage.Format.Format_RGB888)
    png: np.ndarray = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())
    png = png[:, :image.width() * 3].reshape(image.height(), image.width(), 3)
    # sample both images of the side-by-side view at the centres of their preview pixels
    a = panel.results["a"]
    assert a.rendered is not None
    h, w = a.rendered.shape[:2]
    rect, k = panel.viewer.image_rect(), panel.viewer.scale()
    origin = panel.viewer.mapTo(window, panel.viewer.rect().topLeft())
    u, v = np.meshgrid(np.arange(w), np.arange(h))
    ys = (origin.y() + rect.top() + (v + 0.5) * k).astype(int)
    left = png[ys, (origin.x() + rect.left() + (u + 0.5) * k).astype(int)].astype(int)
    right = png[ys, (origin.x() + rect.left() + (u + w + 4 + 0.5) * k).astype(int)].astype(int)  # after the gap
    differs = np.abs(left - right).max(axis=2) > 12
    differs[: int(np.ceil(24 / k))] = False  # the set names are written over the top rows
    # B leaves the eyes and the mouth as the plate: the halves differ there, and only around the face
    from ui.panel.display import to_image_points

    landmarks = to_image_points(a.faces[0]["landmarks"], a.box, (w, h))
    for group in (slice(48, 68), slice(36, 42), slice(42, 48)):  # mouth, eyes
        cx, cy = landmarks[group].mean(axis=0).round().astype(int)
        assert differs[cy - 2:cy + 3, cx - 2:cx + 3].any()
    lo, hi = landmarks.min(axis=0), landmarks.max(axis=0)
    far = np.ones_like(differs)
    far[max(0, int(lo[1] - 0.3 * (hi - lo)[1])):int(hi[1] + 0.3 * (hi - lo)[1]),
        max(0, int(lo[0] - 0.3 * (hi - lo)[0])):int(hi[0] + 0.3 * (hi - lo)[0])] = False
    assert differs.sum() > 50 and not differs[far].any()
    window.panel.shutdown()


def test_command_line_screenshot(shot: PanelState, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    replace(shot, view="difference", frame=1003).save(state)
    out = tmp_path / "difference.png"
    done = subprocess.run([sys.executable, "-m", "ui.panel", "--state", str(state), "--screenshot", str(out),
                           "--timeout", "60"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "QT_QPA_PLATFORM": "offscreen"}, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    assert out.stat().st_size > 10_000


def test_first_run_opens_the_shot_the_client_analysed_last(qtbot, shot: PanelState, tmp_path: Path) -> None:
    """``facebridge panel`` with no arguments: the most recently analysed shot, its plates and sources."""
    import argparse

    from facebridge.client import recent
    from ui.panel.app import PanelWidget, state_from_args
    from ui.panel.cli import add_panel_arguments

    parser = argparse.ArgumentParser()
    add_panel_arguments(parser)
    cache = tmp_path / "cache"
    assert state_from_args(parser.parse_args(["--cache-dir", str(cache)])).shot == ""   # nothing noted yet
    recent.record(cache, "older", "/elsewhere/plate.####.exr", [], now=1.0)
    recent.record(cache, SHOT, shot.input, list(shot.sources), server=shot.server, now=2.0)
    state = state_from_args(parser.parse_args(["--cache-dir", str(cache)]))
    assert (state.shot, state.input, state.sources, state.server) == (SHOT, shot.input, shot.sources, shot.server)
    named = state_from_args(parser.parse_args(["--cache-dir", str(cache), "--shot", "older"]))
    assert (named.shot, named.input, named.sources) == ("older", "/elsewhere/plate.####.exr", ())
    widget = PanelWidget(replace(state, a=FAST, max_side=320))
    qtbot.addWidget(widget)
    widget.show()
    assert widget.wait_until_ready(60), widget.errors
    assert widget.frames == FRAMES and widget.results["a"].faces and widget.empty_label.isHidden()
    widget.shutdown()


def test_an_empty_server_answers_at_once_and_says_what_to_do(qtbot, dlib_models, tmp_path: Path) -> None:
    import time

    from inference_server.server.app import ServerConfig, start_server
    from ui.panel.app import PanelWidget

    server = start_server(ServerConfig(host="127.0.0.1", port=0, device="cpu", cache_dir=tmp_path / "empty-cache",
                                       audit_log=tmp_path / "audit.jsonl", models_dir=tmp_path / "no-models"),
                          models=dlib_models)
    try:
        started = time.monotonic()
        widget = PanelWidget(PanelState(server=f"127.0.0.1:{server.port}"))
        qtbot.addWidget(widget)
        widget.show()
        assert widget.wait_until_ready(5)
        assert time.monotonic() - started < 5
        assert not widget.empty_label.isHidden() and "facebridge demo" in widget.empty_label.text()
        widget.shutdown()
    finally:
        server.stop(grace=1.0)


def test_apply_to_node_from_a_panel_the_node_opened_writes_a_preset_file(qtbot, shot: PanelState,
                                                                         tmp_path: Path) -> None:
    import functools

    from facebridge.presets import read_preset
    from ui.panel.app import PanelWidget, write_to_node

    to_node = tmp_path / "node" / "from_panel.json"
    widget = PanelWidget(shot, apply_to_node=functools.partial(write_to_node, str(to_node)))
    qtbot.addWidget(widget)
    assert widget.apply_button.isEnabled()
    widget.set_params("b", replace(FAST, blend=0.25, regions={"mouth": 0.5}))
    assert widget.apply("b").endswith(str(to_node))
    values, name = read_preset(str(to_node))
    assert name == "B" and values == replace(FAST, blend=0.25, regions={"mouth": 0.5}).settings()
    widget.shutdown()
    closed = PanelWidget(shot)
    qtbot.addWidget(closed)
    assert not closed.apply_button.isEnabled()   # no node opened this one
    closed.shutdown()
