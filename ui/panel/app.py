"""``facebridge panel``: the artist panel. Two parameter sets A and B over an analysed shot, previews
re-composited by the server from its cache, view modes, QC and versions (presets).

Entry points: ``run(args)`` (the ``facebridge panel`` subcommand; its arguments and ``main`` are in
``cli.py``, which imports no Qt). ``PanelWidget`` is the whole panel as one widget; ``PanelWindow`` hosts
it, always as its own process (a Nuke node starts it with ``--to-node``: nothing is loaded into Nuke).

Threads: gRPC calls run on ``PreviewRequester``'s workers (``fetch``); the widget only submits jobs and
shows replies. Sessions are opened on demand by the workers, one per distinct set of model choices.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

from facebridge.auth import PLAIN, ClientTLS
from facebridge.client import recent
from facebridge.client.errors import ClientError
from facebridge.client.grpc_client import FaceBridgeClient, PreviewResult
from facebridge.client.params import load_preset, save_preset
from facebridge.paths import default_cache_dir
from facebridge.client.sequence import PatternError, parse_pattern
from facebridge.schema import SettingError
from facebridge.settings import RenderParams

from .qt import QtCore, QtGui, QtWidgets
from .requests import PreviewRequester
from .state import PanelState, StateError
from .viewer import ImageViewer, Layer, ViewSettings
from .widgets import ParamsEditor, QcStrip, qc_lines

_LOG = logging.getLogger(__name__)
DEFAULT_SERVER = "127.0.0.1:50051"
IDLE_QC_MS = 250  # after the last slider move, ask again with the identity QC
MODEL_FIELDS = ("mode", "colorspace", "swapper", "restorer", "parser", "allow_unverified", "precision",
                "keyframe_interval")


@dataclass(frozen=True)
class PreviewJob:
    """One preview to fetch (built on the Qt thread, run on a worker)."""

    channel: str          # a | b | plate
    frame: int
    plate_path: str
    params: RenderParams
    quality_checks: bool
    max_side: int
    region: str
    sources: tuple[str, ...]
    shot: str
    regions: bool = False  # the region-label overlay


class Sessions:
    """Server sessions of the panel, one per distinct (sources, shot, model choices); thread-safe."""

    def __init__(self, client: FaceBridgeClient) -> None:
        self.client = client
        self._ids: dict[tuple[object, ...], str] = {}
        self._lock = threading.Lock()

    @staticmethod
    def key(params: RenderParams, sources: tuple[str, ...], shot: str) -> tuple[object, ...]:
        reference = params.face if params.face.startswith("ref:") else ""
        return (shot, sources, reference, *(getattr(params, f) for f in MODEL_FIELDS))

    def session_for(self, params: RenderParams, sources: tuple[str, ...], shot: str) -> str:
        key = self.key(params, sources, shot)
        with self._lock:
            if key in self._ids:
                return self._ids[key]
        info = self.client.open_session(list(sources), shot=shot, params=params, client="facebridge panel")
        with self._lock:
            return self._ids.setdefault(key, info.session_id)

    def forget(self, params: RenderParams, sources: tuple[str, ...], shot: str) -> None:
        """Drop a session the server no longer knows (it restarted); the next call opens a new one."""
        with self._lock:
            self._ids.pop(self.key(params, sources, shot), None)

    def close(self) -> None:
        with self._lock:
            ids, self._ids = list(self._ids.values()), {}
        for session_id in ids:
            try:
                self.client.close_session(session_id)
            except ClientError:
                pass


def same_machine(client: FaceBridgeClient) -> bool:
    """Whether the server reads our paths (it offers TRANSPORT_PATH and runs on this host)."""
    from facebridge_wire.v1 import facebridge_pb2 as pb

    info = client.server_info()
    return pb.TRANSPORT_PATH in info.transports and info.hostname == socket.gethostname()


def make_fetch(client: FaceBridgeClient, sessions: Sessions, use_paths: bool) -> Callable[[PreviewJob], PreviewResult]:
    """The blocking call a worker makes for a job."""

    def once(job: PreviewJob) -> PreviewResult:
        session = sessions.session_for(job.params, job.sources, job.shot)
        plate: dict[str, Any] = ({"input_path": job.plate_path} if use_paths
                                 else {"data": Path(job.plate_path).read_bytes(), "name": Path(job.plate_path).name})
        if job.channel == "plate":
            return client.preview(session, job.frame, max_side=job.max_side, region=job.region, include_plate=True,
                                  omit_rendered=True, params=job.params, quality_checks=False, **plate)
        return client.preview(session, job.frame, max_side=job.max_side, region=job.region, params=job.params,
                              quality_checks=job.quality_checks, include_regions=job.regions, **plate)

    def fetch(job: PreviewJob) -> PreviewResult:
        try:
            return once(job)
        except ClientError as exc:
            if "no open session" not in str(exc):
                raise
            sessions.forget(job.params, job.sources, job.shot)  # the server restarted: open it again
            return once(job)

    return fetch


class PanelWidget(QtWidgets.QWidget):
    """The whole panel. ``state.server`` must name a running server.

    Args:
        state: what to show first.
        apply_to_node: ``(which, params) -> message``: hands set ``which`` (a or b) to the host node that
            opened the panel (``write_to_node``: a preset file the node reads back); None when no node opened
            the panel (the button is disabled).
        client: an open client (tests); default: one to ``state.server``.
    """

    def __init__(self, state: PanelState, apply_to_node: Callable[[str, RenderParams], str] | None = None,
                 client: FaceBridgeClient | None = None, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state.validated()
        self._apply_to_node = apply_to_node
        self._own_client = client is None
        self.client = client or FaceBridgeClient(state.server or DEFAULT_SERVER, timeout=120.0)
        self.sessions = Sessions(self.client)
        self.requester = PreviewRequester(make_fetch(self.client, self.sessions, self._use_paths()), parent=self)
        self.requester.replied.connect(self._on_reply)
        self.requester.failed.connect(self._on_failure)
        self.requester.dropped.connect(lambda channel, seq: self._count("dropped"))
        self.results: dict[str, PreviewResult] = {}
        self._asked: dict[str, tuple[object, ...]] = {}  # channel -> what its latest request showed
        self.frames: list[int] = []
        self.tracks: list[int] = []
        self.counters: dict[str, int] = {"replies": 0, "dropped": 0, "failed": 0}
        self.errors: list[str] = []
        self._building = True
        self._build()
        self._qc_channel = "a"
        self._qc_timer = QtCore.QTimer(self, singleShot=True, interval=IDLE_QC_MS)
        self._qc_timer.timeout.connect(self._request_with_qc)
        self._play_timer = QtCore.QTimer(self)
        self._play_timer.timeout.connect(self._advance)
        self._building = False
        self.refresh_shots()

    # -- layout -----------------------------------------------------------------------------------
    def _build(self) -> None:
        s = self.state
        self.shot_box = QtWidgets.QComboBox()
        self.shot_box.setEditable(True)
        self.shot_box.setMinimumWidth(180)
        self.shot_box.activated.connect(lambda _i: self.set_shot(self.shot_box.currentText()))
        self.input_edit = QtWidgets.QLineEdit(s.input)
        self.input_edit.setPlaceholderText("plate pattern, e.g. /shots/sh010/plate.####.exr")
        self.input_edit.editingFinished.connect(lambda: self.set_input(self.input_edit.text()))
        self.sources_edit = QtWidgets.QLineEdit(os.pathsep.join(s.sources))
        self.sources_edit.setPlaceholderText(f"source image(s), separated by '{os.pathsep}'")
        self.sources_edit.editingFinished.connect(self._sources_edited)
        top = QtWidgets.QHBoxLayout()
        widget: QtWidgets.QWidget
        for label, widget, stretch in (("shot", self.shot_box, 0), ("plate", self.input_edit, 2),
                                       ("sources", self.sources_edit, 1)):
            top.addWidget(QtWidgets.QLabel(label))
            top.addWidget(widget, stretch)

        self.viewer = ImageViewer(self)
        self.viewer.settingsChanged.connect(self._viewer_moved)

        self.editors: dict[str, ParamsEditor] = {}
        self.name_edits: dict[str, QtWidgets.QLineEdit] = {}
        self.tabs = QtWidgets.QTabWidget()
        for which in ("a", "b"):
            page = QtWidgets.QWidget()
            column = QtWidgets.QVBoxLayout(page)
            name_edit = QtWidgets.QLineEdit(getattr(s, f"name_{which}"))
            name_edit.editingFinished.connect(lambda w=which: self._renamed(w))
            editor = ParamsEditor()
            editor.set_params(s.params(which))
            editor.edited.connect(lambda params, dragging, w=which: self.set_params(w, params, dragging))
            buttons = QtWidgets.QHBoxLayout()
            for text, action in (("Load…", lambda _=False, w=which: self._load_dialog(w)),
                                 ("Save…", lambda _=False, w=which: self._save_dialog(w)),
                                 ("Copy to " + ("B" if which == "a" else "A"), lambda _=False, w=which: self.copy_set(w))):
                button = QtWidgets.QPushButton(text)
                button.clicked.connect(action)
                buttons.addWidget(button)
            column.addWidget(name_edit)
            column.addWidget(editor)
            column.addLayout(buttons)
            column.addStretch(1)
            self.editors[which], self.name_edits[which] = editor, name_edit
            self.tabs.addTab(page, which.upper())
        self.tabs.setCurrentIndex(0 if s.editing == "a" else 1)
        self.tabs.currentChanged.connect(lambda i: self._update_state(editing="ab"[i]))
        self.apply_button = QtWidgets.QPushButton("Apply to node")
        self.apply_button.setEnabled(self._apply_to_node is not None)
        self.apply_button.setToolTip("hand the set being edited to the FaceBridge node that opened the panel" if
                                     self._apply_to_node else "only when a FaceBridge node opened the panel")
        self.apply_button.clicked.connect(lambda: self.apply(self.state.editing))
        side = QtWidgets.QVBoxLayout()
        side.addWidget(self.tabs, 1)
        side.addWidget(self.apply_button)

        self.mode_buttons: dict[str, QtWidgets.QToolButton] = {}
        modes = QtWidgets.QHBoxLayout()
        group = QtWidgets.QButtonGroup(self)
        for mode, text, key in (("a", "A", "A"), ("b", "B", "B"), ("wipe", "Wipe", "W"), ("side", "Side by side", "S"),
                                ("difference", "Difference", "D")):
            mode_button = QtWidgets.QToolButton()
            mode_button.setText(text)
            mode_button.setCheckable(True)
            mode_button.setToolTip(f"{text} ({key})")
            mode_button.setChecked(mode == s.view)
            mode_button.clicked.connect(lambda _=False, m=mode: self.set_view(m))
            group.addButton(mode_button)
            modes.addWidget(mode_button)
            self.mode_buttons[mode] = mode_button
            QtGui.QShortcut(QtGui.QKeySequence(key), self, lambda m=mode: self.set_view(m))
        self.compare_box = QtWidgets.QComboBox()
        self.compare_box.addItems(["vs B", "vs plate"])
        self.compare_box.setCurrentIndex(0 if s.compare == "b" else 1)
        self.compare_box.currentIndexChanged.connect(lambda i: self._update_state(compare=("b", "plate")[i],
                                                                                  fetch=True))
        flip = QtWidgets.QToolButton()
        flip.setText("Flip (F)")
        flip.clicked.connect(self.flip)
        QtGui.QShortcut(QtGui.QKeySequence("F"), self, self.flip)
        fit = QtWidgets.QToolButton()
        fit.setText("Fit")
        fit.clicked.connect(lambda: self.viewer.zoom_to(0.0))
        full = QtWidgets.QToolButton()
        full.setText("100%")
        full.clicked.connect(self.zoom_100)
        QtGui.QShortcut(QtGui.QKeySequence("Home"), self, lambda: self.viewer.zoom_to(0.0))
        QtGui.QShortcut(QtGui.QKeySequence("1"), self, self.zoom_100)
        self.exposure = QtWidgets.QDoubleSpinBox(minimum=-10.0, maximum=10.0, singleStep=0.5, value=s.exposure)
        self.exposure.setPrefix("exposure ")
        self.exposure.valueChanged.connect(lambda v: self._update_state(exposure=float(v)))
        self.overlay_boxes: dict[str, QtWidgets.QCheckBox] = {}
        for name in ("landmarks", "regions", "tracks"):
            box = QtWidgets.QCheckBox(name)
            box.setChecked(getattr(s.overlays, name))
            box.toggled.connect(lambda on, n=name: self._update_state(
                overlays=replace(self.state.overlays, **{n: on}), fetch=n == "regions"))
            self.overlay_boxes[name] = box
        self.region_box = QtWidgets.QComboBox()
        self.region_box.addItems(["faces", "frame"])
        self.region_box.setCurrentText(s.region)
        self.region_box.currentTextChanged.connect(lambda t: self._update_state(region=t, fetch=True))
        for widget in (self.compare_box, flip, fit, full, self.exposure, *self.overlay_boxes.values(), self.region_box):
            modes.addWidget(widget)
        modes.addStretch(1)

        self.play_button = QtWidgets.QToolButton()
        self.play_button.setText("Play")
        self.play_button.setCheckable(True)
        self.play_button.toggled.connect(self.play)
        QtGui.QShortcut(QtGui.QKeySequence("Space"), self, self.play_button.toggle)
        QtGui.QShortcut(QtGui.QKeySequence("Right"), self, lambda: self.step(1))
        QtGui.QShortcut(QtGui.QKeySequence("Left"), self, lambda: self.step(-1))
        self.loop_box = QtWidgets.QCheckBox("loop")
        self.loop_box.setChecked(s.loop)
        self.loop_box.toggled.connect(lambda on: self._update_state(loop=on))
        self.scrubber = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.scrubber.valueChanged.connect(lambda i: self.set_frame(self.frames[i]) if self.frames else None)
        self.frame_label = QtWidgets.QLabel("")
        self.frame_label.setMinimumWidth(90)
        transport = QtWidgets.QHBoxLayout()
        for widget, stretch in ((self.play_button, 0), (self.loop_box, 0), (self.scrubber, 1), (self.frame_label, 0)):
            transport.addWidget(widget, stretch)
        self.strip = QcStrip()
        self.strip.seek.connect(self.set_frame)
        self.qc_label = QtWidgets.QLabel("")
        self.qc_label.setFont(QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.SystemFont.FixedFont))
        self.qc_label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)

        self.empty_label = QtWidgets.QLabel("")
        self.empty_label.setWordWrap(True)
        self.empty_label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.empty_label.hide()

        centre = QtWidgets.QVBoxLayout()
        centre.addLayout(modes)
        centre.addWidget(self.empty_label)
        centre.addWidget(self.viewer, 1)
        centre.addLayout(transport)
        centre.addWidget(self.strip)
        centre.addWidget(self.qc_label)
        body = QtWidgets.QHBoxLayout()
        body.addLayout(centre, 1)
        side_widget = QtWidgets.QWidget()
        side_widget.setLayout(side)
        side_widget.setFixedWidth(330)
        body.addWidget(side_widget)
        outer = QtWidgets.QVBoxLayout(self)
        outer.addLayout(top)
        outer.addLayout(body, 1)
        self._apply_view_settings()

    # -- state ------------------------------------------------------------------------------------
    def _update_state(self, fetch: bool = False, **changes: Any) -> None:
        self.state = replace(self.state, **changes).validated()
        self._apply_view_settings()
        if fetch:
            self.request_all(only_changed=True)

    def _apply_view_settings(self) -> None:
        s = self.state
        self.viewer.set_settings(ViewSettings(mode=s.view, flipped=s.flipped, wipe=s.wipe, exposure=s.exposure,
                                              gain=s.gain, landmarks=s.overlays.landmarks, regions=s.overlays.regions,
                                              tracks=s.overlays.tracks, zoom=s.zoom, pan=s.pan))
        self._show_layers()

    def _viewer_moved(self, settings: ViewSettings) -> None:
        self.state = replace(self.state, wipe=settings.wipe, zoom=settings.zoom, pan=settings.pan)

    def set_view(self, mode: str) -> None:
        self.mode_buttons[mode].setChecked(True)
        self._update_state(view=mode)
        self.request_all(only_changed=True)

    def flip(self) -> None:
        self._update_state(flipped=not self.state.flipped)

    def zoom_100(self) -> None:
        """One screen pixel per plate pixel."""
        shown = self.results.get("a") or self.results.get("b") or self.results.get("plate")
        image = None if shown is None else (shown.rendered if shown.rendered is not None else shown.plate)
        if shown is None or image is None:
            self.viewer.zoom_to(1.0)
            return
        x0, _, x1, _ = shown.box
        self.viewer.zoom_to((x1 - x0) / image.shape[1])

    def _renamed(self, which: str) -> None:
        changes: dict[str, Any] = {f"name_{which}": self.name_edits[which].text().strip() or which.upper()}
        self._update_state(**changes)

    def _sources_edited(self) -> None:
        sources = tuple(s for s in self.sources_edit.text().split(os.pathsep) if s.strip())
        if sources != self.state.sources:
            self._update_state(sources=sources, fetch=True)

    # -- shots and frames -------------------------------------------------------------------------
    def refresh_shots(self) -> None:
        """Ask the server for its shots; show the state's shot (or the first)."""
        try:
            shots = self.client.list_shots()
        except ClientError as exc:
            self._error(str(exc))
            return
        self.shot_box.clear()
        self.shot_box.addItems([s.shot for s in shots])
        self.set_shot(self.state.shot or (shots[0].shot if shots else ""))

    def set_shot(self, shot: str) -> None:
        self.shot_box.setCurrentText(shot)
        listing = self.client.list_shots(shot, with_frames=True) if shot else []
        frames: list[int] = []
        summaries: list[dict[str, Any]] = []
        if listing:
            summaries = listing[0].frame_summaries
            frames = [int(f["frame"]) for f in summaries]
            self.tracks = list(listing[0].tracks)
        if not frames and self.state.input:
            try:
                frames = parse_pattern(self.state.input).existing_frames()
            except PatternError as exc:
                self._error(str(exc))
        for editor in self.editors.values():
            editor.set_tracks(self.tracks)
        self.frames = frames
        self.strip.set_frames(frames, summaries)
        self.scrubber.blockSignals(True)
        self.scrubber.setRange(0, max(0, len(frames) - 1))
        self.scrubber.blockSignals(False)
        frame = self.state.frame if self.state.frame in frames else (frames[0] if frames else None)
        self.state = replace(self.state, shot=shot)
        self._show_empty_state()
        self.set_frame(frame, force=True)

    def _show_empty_state(self) -> None:
        """Say what to do when there is nothing to preview (instead of waiting for previews that never come)."""
        if not self.shot_box.count() and not self.state.input:
            text = ("No analysed shot yet. Run <b>facebridge demo</b>, or <b>facebridge analyse --input "
                    "/path/plate.####.exr</b> (or <b>process</b>), then open the panel again; or type a plate "
                    "pattern above.")
        elif not self.state.input:
            text = (f"Shot <b>{self.state.shot}</b> has no plate pattern here: type it above (the server's "
                    "shot database records no input paths).")
        elif not self.frames:
            text = f"No frames found for <b>{self.state.input}</b>: check the plate pattern."
        else:
            text = ""
        self.empty_label.setText(text)
        self.empty_label.setVisible(bool(text))

    def set_input(self, pattern: str) -> None:
        if pattern.strip() != self.state.input:
            self.state = replace(self.state, input=pattern.strip())
            self.set_shot(self.state.shot)

    def set_frame(self, frame: int | None, force: bool = False) -> None:
        if frame is None or (frame == self.state.frame and not force):
            return
        self.state = replace(self.state, frame=frame)
        if frame in self.frames:
            self.scrubber.blockSignals(True)
            self.scrubber.setValue(self.frames.index(frame))
            self.scrubber.blockSignals(False)
        self.frame_label.setText(f"frame {frame}")
        self.strip.set_current(frame)
        self.requester.invalidate()  # nothing asked for another frame may show now
        self.request_all(quality_checks=not self.play_button.isChecked())

    def step(self, delta: int) -> None:
        if not self.frames or self.state.frame not in self.frames:
            return
        index = self.frames.index(self.state.frame) + delta
        if self.state.loop:
            index %= len(self.frames)
        self.set_frame(self.frames[max(0, min(len(self.frames) - 1, index))])

    def play(self, on: bool) -> None:
        self.play_button.setText("Stop" if on else "Play")
        if on:
            self._play_timer.start(int(1000 / self.state.fps))
        else:
            self._play_timer.stop()
            self.request_all()  # the paused frame with its QC

    def _advance(self) -> None:
        if self.frames and self.state.frame == self.frames[-1] and not self.state.loop:
            self.play_button.setChecked(False)
            return
        self.step(1)

    # -- previews ---------------------------------------------------------------------------------
    def _use_paths(self) -> bool:
        try:
            return same_machine(self.client)
        except ClientError:
            return False

    def _plate_path(self) -> str:
        if not self.state.input or self.state.frame is None:
            return ""
        try:
            return parse_pattern(self.state.input).path(self.state.frame)
        except PatternError as exc:
            self._error(str(exc))
            return ""

    def needed_channels(self) -> list[str]:
        s = self.state
        channels = ["a"]
        if s.compare == "b" or s.view == "b":
            channels.append("b")
        if s.compare == "plate":
            channels.append("plate")
        return channels

    def _job(self, channel: str, quality_checks: bool, draft: bool = False) -> PreviewJob | None:
        path = self._plate_path()
        if not path or self.state.frame is None:
            return None
        params = self.state.params("a" if channel == "plate" else channel)
        if draft:
            params = replace(params, stabilise=0.0)
        return PreviewJob(channel, self.state.frame, path, params, quality_checks, self.state.max_side,
                          self.state.region, self.state.sources, self.state.shot,
                          self.state.overlays.regions and channel != "plate")

    @staticmethod
    def _asked_key(job: PreviewJob) -> tuple[object, ...]:
        return (job.frame, job.plate_path, job.params, job.max_side, job.region, job.sources, job.shot, job.regions)

    def request(self, channel: str, quality_checks: bool = True, draft: bool = False) -> int | None:
        job = self._job(channel, quality_checks, draft)
        if job is None:
            return None
        self._asked[channel] = self._asked_key(job)
        return self.requester.submit(channel, job)

    def request_all(self, quality_checks: bool = True, only_changed: bool = False) -> None:
        """Ask for every preview the view needs (``only_changed``: those not asked for as they are now)."""
        if self._building:
            return
        if (self.state.frame is None or not self._plate_path()) and not self.viewer.message:
            self.viewer.message = "name the shot's plate pattern to preview it"
            self.viewer.update()
        for channel in self.needed_channels():
            job = self._job(channel, quality_checks)
            if job is None:
                continue
            if not only_changed or self._asked.get(channel) != self._asked_key(job):
                self.request(channel, quality_checks)

    def set_params(self, which: str, params: RenderParams, dragging: bool = False) -> None:
        """Parameter set ``which`` changed: ask for a fast re-composite now, with QC once the slider rests."""
        self.state = self.state.with_params(which, params)
        if self.editors[which].params != params:
            self.editors[which].set_params(params)
        if which == "a" or "b" in self.needed_channels():
            self.request(which, quality_checks=not dragging, draft=dragging and self.state.draft_drag)
        if dragging:
            self._qc_channel = which
            self._qc_timer.start()
        else:
            self._qc_timer.stop()

    def _request_with_qc(self) -> None:
        self.request(self._qc_channel, quality_checks=True)

    def _on_reply(self, channel: str, seq: int, result: PreviewResult) -> None:
        if result.frame_number != self.state.frame:  # asked before a frame change that was not invalidated
            self._count("dropped")
            return
        self._count("replies")
        if result.failed:
            self._error(result.message)
        self.results[channel] = result
        if channel == "a" and result.faces:
            identities = [f["identity_distance"] for f in result.faces if f["identity_distance"] is not None]
            self.strip.note(result.frame_number, max(identities) if identities else None,
                            "hit" if all(f["cache"] == "hit" for f in result.faces) else "miss")
        self._show_layers()

    def _on_failure(self, channel: str, seq: int, message: str) -> None:
        self._count("failed")
        self._error(message)

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    def _error(self, message: str) -> None:
        _LOG.warning("panel: %s", message)
        self.errors.append(message)
        self.viewer.message = message
        self.viewer.update()

    def _show_layers(self) -> None:
        s = self.state
        current = {k: r for k, r in self.results.items() if r.frame_number == s.frame}
        a = current.get("a")
        first = Layer(a, "rendered", dict(s.a.regions), s.name_a) if a is not None else None
        if s.compare == "plate":
            plate = current.get("plate")
            second = Layer(plate, "plate", {}, "plate") if plate is not None else None
        else:
            b = current.get("b")
            second = Layer(b, "rendered", dict(s.b.regions), s.name_b) if b is not None else None
        self.viewer.set_layers(first, second)
        lines = qc_lines(s.name_a, a)
        if s.compare == "b":
            lines += qc_lines(s.name_b, current.get("b"))
        self.qc_label.setText("\n".join(lines))

    def is_ready(self) -> bool:
        """Every preview the view needs is on screen and answers the latest request of its channel (at once
        when there is nothing to preview: the empty state says why)."""
        if self.state.frame not in self.frames or not self._plate_path():
            return True
        for channel in self.needed_channels():
            result = self.results.get(channel)
            if result is None or result.frame_number != self.state.frame:
                return False
            if self.requester.latest(channel) != self._delivered_seq(channel):
                return False
        return True

    def _delivered_seq(self, channel: str) -> int:
        return self.requester._book._channel(channel).delivered  # noqa: SLF001 - same package

    def wait_until_ready(self, timeout: float = 120.0) -> bool:
        """Process events until ``is_ready`` (True) or ``timeout`` seconds (False)."""
        deadline = time.monotonic() + timeout
        app = QtWidgets.QApplication.instance()
        if app is None:
            raise RuntimeError("wait_until_ready needs the QApplication (see application())")
        while time.monotonic() < deadline:
            app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 50)
            if self.is_ready():
                return True
            if self.errors and self.counters["failed"]:
                return False
            time.sleep(0.005)
        return False

    # -- versions ---------------------------------------------------------------------------------
    def save_set(self, which: str, path: str | Path) -> None:
        save_preset(path, self.state.params(which), name=getattr(self.state, f"name_{which}"))

    def load_set(self, which: str, path: str | Path) -> RenderParams:
        params = load_preset(path)
        import json

        name = json.loads(Path(path).read_text(encoding="utf-8")).get("name") or Path(path).stem
        self.name_edits[which].setText(str(name))
        changes: dict[str, Any] = {f"name_{which}": str(name)}
        self.state = replace(self.state, **changes)
        self.set_params(which, params)
        return params

    def copy_set(self, which: str) -> None:
        other = "b" if which == "a" else "a"
        self.set_params(other, self.state.params(which))

    def apply(self, which: str) -> str:
        if self._apply_to_node is None:
            raise RuntimeError("Apply to node works only when a FaceBridge node opened the panel")
        try:
            message = self._apply_to_node(which, self.state.params(which))
            self.qc_label.setText(message)
            return message
        except Exception as exc:  # noqa: BLE001 - shown to the artist, one line
            self._error(str(exc))
            return ""

    def _load_dialog(self, which: str) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Load preset", "", "Presets (*.json)")
        if path:
            try:
                self.load_set(which, path)
            except SettingError as exc:
                self._error(str(exc))

    def _save_dialog(self, which: str) -> None:
        name = getattr(self.state, f"name_{which}")
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Save preset", f"{name}.json", "Presets (*.json)")
        if path:
            self.save_set(which, path)

    def shutdown(self) -> None:
        self._play_timer.stop()
        self.requester.close()
        self.sessions.close()
        if self._own_client:
            self.client.close()

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 - Qt override
        self.shutdown()
        super().closeEvent(event)


class PanelWindow(QtWidgets.QMainWindow):
    """The standalone panel window."""

    def __init__(self, state: PanelState, client: FaceBridgeClient | None = None,
                 apply_to_node: Callable[[str, RenderParams], str] | None = None) -> None:
        super().__init__()
        self.setWindowTitle(f"FaceBridge panel — {state.shot or 'no shot'}")
        self.panel = PanelWidget(state, apply_to_node=apply_to_node, client=client)
        self.setCentralWidget(self.panel)
        self.resize(*state.window)

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 - Qt override
        self.panel.shutdown()
        super().closeEvent(event)


# -- command line (arguments in cli.py, which imports no Qt) ----------------------------------------
def state_from_args(args: argparse.Namespace) -> PanelState:
    """The panel's first state: a state file, then the arguments; a shot without a plate pattern (or no shot
    at all, no state) takes the plates and sources the client noted when it analysed that shot (the most
    recent one), so ``facebridge panel`` right after ``facebridge demo`` opens the demo shot."""
    state = PanelState.load(args.state) if getattr(args, "state", None) else PanelState()
    changes: dict[str, Any] = {}
    for name in ("server", "shot", "input", "frame", "view"):
        if getattr(args, name, None) is not None:
            changes[name] = getattr(args, name)
    if getattr(args, "source", None):
        changes["sources"] = tuple(args.source)
    for which in ("a", "b"):
        path = getattr(args, f"preset_{which}", None)
        if path:
            changes[which] = load_preset(path)
            changes[f"name_{which}"] = Path(path).stem
    state = replace(state, **changes)
    if not state.input and not getattr(args, "state", None):
        noted = recent.lookup(getattr(args, "cache_dir", None) or default_cache_dir(), state.shot)
        if noted is not None:
            state = replace(state, shot=noted.shot, input=noted.input, sources=state.sources or noted.sources,
                            server=state.server or noted.server)
    return state.validated()


def write_to_node(path: str | Path, which: str, params: RenderParams) -> str:
    """'Apply to node' for a panel opened by a host node: set ``which`` as a preset file the node reads back."""
    save_preset(path, params, name=which.upper())
    return f"set {which.upper()} written for the node: {path}"


def application(offscreen: bool = False) -> QtWidgets.QApplication:
    """The process' QApplication (created once; ``offscreen`` without a display)."""
    if offscreen and not os.environ.get("QT_QPA_PLATFORM"):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    app = QtWidgets.QApplication.instance()
    if app is None:
        return QtWidgets.QApplication(["facebridge panel"])
    # instance() is typed as the QCoreApplication base; in the panel's process (or Nuke's) it is the
    # QApplication that this function or the host created
    return cast(QtWidgets.QApplication, app)


def screenshot(window: QtWidgets.QWidget, panel: PanelWidget, path: str | Path, timeout: float) -> bool:
    """Show ``window``, wait for the previews, and save it as a PNG; False when the previews did not arrive."""
    window.show()
    ready = panel.wait_until_ready(timeout)
    QtWidgets.QApplication.processEvents()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if not window.grab().save(str(path)):
        raise OSError(f"cannot write {path}")
    return ready


def run(args: argparse.Namespace) -> int:
    """``facebridge panel``."""
    try:
        state = state_from_args(args)
    except (StateError, SettingError) as exc:
        print(f"facebridge: error: {exc}", file=sys.stderr)
        return 2
    app = application(offscreen=bool(args.screenshot) and not os.environ.get("DISPLAY"))
    with ExitStack() as stack:
        token: str | None = None  # a shared server: found as the server finds it (facebridge.auth)
        tls: ClientTLS | None = None
        if not state.server:
            from facebridge.client.local_server import LocalServer

            try:
                from facebridge.client.process_cmd import private_roots

                server = stack.enter_context(LocalServer(  # reads the shot's plates by path; the user's own server
                    device=args.device, cache_dir=args.cache_dir, models_dir=args.models_dir,
                    allow_roots=private_roots(state.input) if state.input else [],
                    allow_unverified=state.a.allow_unverified or state.b.allow_unverified))
            except ClientError as exc:
                print(f"facebridge: error: {exc}", file=sys.stderr)
                return 2
            state = replace(state, server=server.address)
            token, tls = server.token, PLAIN  # the private server's own token
        try:
            client = stack.enter_context(FaceBridgeClient(state.server, token=token, tls=tls))
        except ClientError as exc:
            print(f"facebridge: error: {exc}", file=sys.stderr)
            return 2
        try:
            client.wait_ready(timeout=60.0)
        except ClientError as exc:
            print(f"facebridge: error: {exc}", file=sys.stderr)
            return 2
        to_node = getattr(args, "to_node", None)
        window = PanelWindow(state, client=client,
                             apply_to_node=functools.partial(write_to_node, to_node) if to_node else None)
        try:
            if args.screenshot:
                ready = screenshot(window, window.panel, args.screenshot, args.timeout)
                for message in window.panel.errors:
                    print(f"facebridge: panel: {message}", file=sys.stderr)
                print(f"facebridge panel: wrote {args.screenshot}" + ("" if ready else " (previews incomplete)"))
                code = 0 if ready else 1
            else:
                window.show()
                code = int(app.exec())
            if getattr(args, "save_state", None):
                window.panel.state.save(args.save_state)
        finally:
            window.panel.shutdown()
            window.close()
    return code
