"""The panel's controls: a parameter-set editor (sliders), the per-frame QC readout and the QC strip over
the shot. Each widget holds no state beyond what it shows; the panel owns the ``PanelState``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from facebridge import schema
from facebridge.schema import COLOUR_MATCH
from facebridge.settings import RenderParams

from .qt import QtCore, QtGui, QtWidgets

STEPS = 1000  # slider resolution


@dataclass(frozen=True)
class Slider:
    """A float control: the RenderParams field (``regions.NAME`` for a region weight) and its range."""

    field: str
    label: str
    lo: float
    hi: float


def _sliders(setting: schema.Setting) -> tuple[Slider, ...]:
    if setting.kind == "regions":
        lo, hi = schema.REGION_WEIGHT_RANGE
        return tuple(Slider(f"regions.{name}", name, lo, hi) for name in schema.REGION_NAMES)
    return (Slider(setting.name, setting.label, *setting.slider_range),) if setting.kind == "float" else ()


SLIDERS = tuple(slider for name in schema.PREVIEW_SETTINGS for slider in _sliders(schema.BY_NAME[name]))
"""A slider per number a preview may change (the schema's order and slider ranges)."""


def get_value(params: RenderParams, name: str) -> float:
    if name.startswith("regions."):
        return float(params.regions.get(name[8:], 1.0))
    return float(getattr(params, name))


def set_value(params: RenderParams, name: str, value: float) -> RenderParams:
    """``params`` with one slider's field set; a region back at weight 1 leaves ``regions`` (as the knobs do)."""
    if name.startswith("regions."):
        regions = {k: v for k, v in params.regions.items() if k != name[8:]}
        if value != 1.0:
            regions[name[8:]] = value
        return replace(params, regions=regions)
    changes: dict[str, Any] = {name: value}  # one field, named at run time
    return replace(params, **changes)


class ParamsEditor(QtWidgets.QWidget):
    """Sliders and choices for one parameter set.

    Signals:
        edited(RenderParams, bool): the set changed; the flag is True while a slider is being dragged
            (a fast preview is enough), False once the change is complete (preview with QC).
    """

    edited = QtCore.Signal(object, bool)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._params = RenderParams()
        self._quiet = False
        form = QtWidgets.QFormLayout(self)
        form.setContentsMargins(4, 4, 4, 4)
        form.setVerticalSpacing(2)
        self.sliders: dict[str, QtWidgets.QSlider] = {}
        self._values: dict[str, QtWidgets.QLabel] = {}
        for spec in SLIDERS:
            row = QtWidgets.QHBoxLayout()
            slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
            slider.setRange(0, STEPS)
            slider.setObjectName(spec.field)
            value = QtWidgets.QLabel("")
            value.setMinimumWidth(40)
            row.addWidget(slider, 1)
            row.addWidget(value)
            form.addRow(spec.label, row)
            slider.valueChanged.connect(lambda v, s=spec: self._slid(s, v))
            slider.sliderReleased.connect(lambda: self.edited.emit(self._params, False))
            self.sliders[spec.field] = slider
            self._values[spec.field] = value
        self.colour_match = QtWidgets.QComboBox()
        self.colour_match.addItems(list(COLOUR_MATCH))
        self.colour_match.currentTextChanged.connect(lambda t: self._chose("colour_match", t))
        form.addRow("colour match", self.colour_match)
        self.face = QtWidgets.QComboBox()
        self.face.setEditable(True)
        self.face.addItem("all")
        self.face.currentTextChanged.connect(lambda t: self._chose("face", t.strip() or "all"))
        form.addRow("faces", self.face)
        self.set_params(self._params)

    @property
    def params(self) -> RenderParams:
        return self._params

    def set_tracks(self, tracks: list[int]) -> None:
        """Offer ``all`` and one ``track:N`` per track of the shot."""
        self._quiet = True
        current = self.face.currentText()
        self.face.clear()
        self.face.addItems(["all", *(f"track:{t}" for t in tracks)])
        self.face.setCurrentText(current or "all")
        self._quiet = False

    def set_params(self, params: RenderParams) -> None:
        """Show ``params`` without emitting ``edited``."""
        self._quiet = True
        self._params = params
        for spec in SLIDERS:
            value = get_value(params, spec.field)
            self.sliders[spec.field].setValue(round((value - spec.lo) / (spec.hi - spec.lo) * STEPS))
            self._values[spec.field].setText(f"{value:.3g}")
        self.colour_match.setCurrentText(params.colour_match)
        self.face.setCurrentText(params.face)
        self._quiet = False

    def _slid(self, spec: Slider, position: int) -> None:
        value = round(spec.lo + (spec.hi - spec.lo) * position / STEPS, 4)
        self._values[spec.field].setText(f"{value:.3g}")
        if self._quiet:
            return
        self._params = set_value(self._params, spec.field, value).validated()
        self.edited.emit(self._params, self.sliders[spec.field].isSliderDown())

    def _chose(self, name: str, value: str) -> None:
        if self._quiet or getattr(self._params, name) == value:
            return
        try:
            changes: dict[str, Any] = {name: value}  # one field, named at run time
            self._params = replace(self._params, **changes).validated()
        except ValueError:
            return
        self.edited.emit(self._params, False)


def _fmt(value: object, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def qc_lines(label: str, preview: object | None) -> list[str]:
    """One line per face of a preview's QC (identity distance, jitter, cache state) and the server time."""
    if preview is None:
        return [f"{label}: waiting"]
    faces = getattr(preview, "faces", [])
    timings = getattr(preview, "timings_ms", {})
    head = f"{label}: {getattr(preview, 'status', '')}  server {sum(timings.values()):.0f} ms"
    message = getattr(preview, "message", "")
    if message:
        head += f"  ({message})"
    lines = [head]
    for face in faces:
        lines.append(f"  track {face['track']}: identity {_fmt(face['identity_distance'])} "
                     f"(plate {_fmt(face['identity_distance_plate'])})  jitter {_fmt(face['jitter_raw'], 2)} -> "
                     f"{_fmt(face['jitter_smoothed'], 2)} px  cache {face['cache']}")
    return lines


@dataclass(frozen=True)
class FrameQC:
    """What the strip knows about one frame."""

    jitter_raw: float | None = None
    jitter_smoothed: float | None = None
    identity: float | None = None  # the largest identity distance of set A's faces (known once previewed)
    cache: str = ""                # hit | miss | "" (unknown)
    cut: int = 0
    keyframe: bool = False


class QcStrip(QtWidgets.QWidget):
    """QC over the shot: identity distance bars, a jitter line (raw grey, smoothed white), cache state
    ticks (green hit, orange miss) and cuts; the current frame is marked. Click or drag to seek.

    Signals:
        seek(int): a frame was clicked.
    """

    seek = QtCore.Signal(int)
    IDENTITY_FULL = 1.0  # bar height at this identity distance

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumHeight(56)
        self.frames: list[int] = []
        self.qc: dict[int, FrameQC] = {}
        self.current: int | None = None

    def set_frames(self, frames: list[int], summaries: list[dict[str, Any]]) -> None:
        self.frames = list(frames)
        self.qc = {int(s["frame"]): FrameQC(s.get("jitter_raw"), s.get("jitter_smoothed"),
                                            cut=int(s.get("cut", 0)), keyframe=bool(s.get("keyframe")))
                   for s in summaries}
        self.update()

    def note(self, frame: int, identity: float | None, cache: str) -> None:
        self.qc[frame] = replace(self.qc.get(frame, FrameQC()), identity=identity, cache=cache)
        self.update()

    def set_current(self, frame: int | None) -> None:
        self.current = frame
        self.update()

    def _x(self, index: int) -> float:
        return (index + 0.5) * self.width() / max(1, len(self.frames))

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:  # noqa: N802 - Qt override
        painter = QtGui.QPainter(self)
        painter.fillRect(self.rect(), QtGui.QColor(28, 28, 28))
        if not self.frames:
            painter.end()
            return
        h = self.height() - 8
        step = self.width() / len(self.frames)
        jitters = [v for q in self.qc.values() for v in (q.jitter_raw, q.jitter_smoothed) if v is not None]
        jitter_full = max([1.0, *jitters])
        raw_line: list[QtCore.QPointF] = []
        smooth_line: list[QtCore.QPointF] = []
        previous_cut = None
        for i, frame in enumerate(self.frames):
            q = self.qc.get(frame, FrameQC())
            x0 = i * step
            if q.identity is not None:
                bar = min(1.0, q.identity / self.IDENTITY_FULL) * h
                painter.fillRect(QtCore.QRectF(x0 + 1, 4 + h - bar, max(1.0, step - 2), bar), QtGui.QColor(70, 110, 170))
            if q.cache:
                colour = QtGui.QColor(90, 200, 90) if q.cache == "hit" else QtGui.QColor(230, 150, 40)
                painter.fillRect(QtCore.QRectF(x0, self.height() - 4, max(1.0, step - 1), 4), colour)
            if previous_cut is not None and q.cut != previous_cut:
                painter.setPen(QtGui.QPen(QtGui.QColor(220, 60, 60), 2))
                painter.drawLine(QtCore.QPointF(x0, 0), QtCore.QPointF(x0, self.height()))
            previous_cut = q.cut
            for value, line in ((q.jitter_raw, raw_line), (q.jitter_smoothed, smooth_line)):
                if value is not None:
                    line.append(QtCore.QPointF(self._x(i), 4 + h - value / jitter_full * h))
        for line, colour in ((raw_line, QtGui.QColor(140, 140, 140)), (smooth_line, QtGui.QColor(240, 240, 240))):
            if len(line) > 1:
                painter.setPen(QtGui.QPen(colour, 1.5))
                painter.drawPolyline(line)
        if self.current in self.frames:
            x = self._x(self.frames.index(self.current))
            painter.setPen(QtGui.QPen(QtGui.QColor(255, 220, 80), 2))
            painter.drawLine(QtCore.QPointF(x, 0), QtCore.QPointF(x, self.height()))
        painter.end()

    def _frame_at(self, x: float) -> int | None:
        if not self.frames:
            return None
        return self.frames[min(len(self.frames) - 1, max(0, int(x / self.width() * len(self.frames))))]

    def mousePressEvent(self, event: QtGui.QMouseEvent) -> None:  # noqa: N802 - Qt override
        frame = self._frame_at(event.position().x())
        if frame is not None:
            self.seek.emit(frame)

    def mouseMoveEvent(self, event: QtGui.QMouseEvent) -> None:  # noqa: N802 - Qt override
        if event.buttons():
            self.mousePressEvent(event)
