"""The image view: the view modes of two previews, fit and 100 % zoom with pan, a draggable wipe divider,
and overlays (landmarks, region masks, track ids).

The view composes display images with ``display.compose`` (pure) only when what it shows changes; painting,
panning and zooming only draw that image. Overlays are drawn in preview pixels through the same transform,
from each preview's geometry (``PreviewResult.box``), so they line up at any zoom.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from . import display
from .qt import QtCore, QtGui, QtWidgets

REGION_COLOURS = np.array([(255, 80, 80), (255, 200, 60), (80, 220, 120), (255, 90, 200), (90, 170, 255),
                           (200, 120, 255), (255, 150, 60), (120, 240, 240), (30, 30, 30)], np.uint8)
"""One colour per overlay label the server names (``region_names``): the regions of ``facebridge.schema.REGION_NAMES``
(eyes, brows, nose, mouth, cheeks, forehead, jaw, skin), then ``occluded`` (near black: where an occluder saw
something in front of the face, the plate stays)."""
DIVIDER_GRAB_PX = 8
MIN_ZOOM, MAX_ZOOM = 0.05, 32.0


@dataclass(frozen=True)
class Layer:
    """One image the view may show: a preview (any object with ``rendered``/``plate``, ``box``, ``faces``,
    ``labels``, ``region_names``, ``colourspace``) and which of its images, with the set's region weights."""

    preview: object
    image: str = "rendered"  # rendered | plate
    weights: dict[str, float] = field(default_factory=dict)
    label: str = ""

    @property
    def pixels(self) -> np.ndarray | None:
        return getattr(self.preview, self.image, None)


@dataclass(frozen=True)
class ViewSettings:
    mode: str = "wipe"
    flipped: bool = False
    wipe: float = 0.5
    exposure: float = 0.0
    gain: float = 8.0
    landmarks: bool = False
    regions: bool = False
    tracks: bool = True
    zoom: float = 0.0                  # 0 = fit, else screen px per preview px
    pan: tuple[float, float] = (0.0, 0.0)


def as_qimage(rgb8: np.ndarray) -> QtGui.QImage:
    """A QImage sharing ``rgb8`` (``(h, w, 3)`` or ``(h, w, 4)`` uint8, C-contiguous): keep the array alive."""
    h, w, c = rgb8.shape
    fmt = QtGui.QImage.Format.Format_RGB888 if c == 3 else QtGui.QImage.Format.Format_RGBA8888
    return QtGui.QImage(rgb8.data, w, h, w * c, fmt)


class ImageViewer(QtWidgets.QWidget):
    """Shows layers ``first`` and ``second`` in a view mode.

    Signals:
        settingsChanged(ViewSettings): the wipe divider, zoom or pan moved by the user.
    """

    settingsChanged = QtCore.Signal(object)

    def __init__(self, parent: QtWidgets.QWidget | None = None, ocio_view: display.OcioView | None = None) -> None:
        super().__init__(parent)
        self.setMinimumSize(320, 240)
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(True)
        self.settings = ViewSettings()
        self.ocio_view = ocio_view
        self._first: Layer | None = None
        self._second: Layer | None = None
        self._shown: np.ndarray | None = None
        self._qimage: QtGui.QImage | None = None
        self._tints: list[tuple[QtGui.QImage, np.ndarray, float]] = []
        self._drag: tuple[str, QtCore.QPointF, tuple[float, float]] | None = None
        self._displayed: list[tuple[np.ndarray, tuple[float, str], np.ndarray]] = []  # recent view transforms
        self.message = ""

    # -- what is shown ----------------------------------------------------------------------------
    def set_layers(self, first: Layer | None, second: Layer | None) -> None:
        self._first, self._second = first, second
        self._recompose()

    def set_settings(self, settings: ViewSettings) -> None:
        recompose = any(getattr(settings, k) != getattr(self.settings, k)
                        for k in ("mode", "flipped", "wipe", "exposure", "gain", "regions"))
        self.settings = settings
        if recompose:
            self._recompose()
        else:
            self.update()

    @property
    def shown(self) -> np.ndarray | None:
        """The composed display image (uint8 ``(h, w, 3)``), or None before a preview arrived."""
        return self._shown

    def _placed(self) -> list[tuple[Layer, float]]:
        """The layers drawn and the x offset (preview px) of each in the composed image."""
        s = self.settings
        first, second = (self._second, self._first) if s.flipped else (self._first, self._second)
        if s.mode == "b":
            return [(second, 0.0)] if second is not None else []
        if first is None:
            return []
        if s.mode == "side" and second is not None and first.pixels is not None:
            return [(first, 0.0), (second, float(first.pixels.shape[1] + display.SIDE_GAP))]
        return [(first, 0.0)]

    def _recompose(self) -> None:
        s = self.settings
        a = self._first.pixels if self._first is not None else None
        b = self._second.pixels if self._second is not None else None
        colourspace = next((getattr(layer.preview, "colourspace", "") for layer in (self._first, self._second)
                            if layer is not None), "")

        def transform(pixels: np.ndarray) -> np.ndarray:  # the display image of an unchanged preview is reused
            key = (s.exposure, colourspace)
            for source, source_key, image in self._displayed:
                if source is pixels and source_key == key:
                    return image
            image = display.to_display(pixels, s.exposure, self.ocio_view, colourspace)
            self._displayed = [(pixels, key, image), *self._displayed[:3]]
            return image

        shown: np.ndarray | None
        if a is not None and b is not None and a.shape == b.shape:
            shown = display.compose(s.mode, a, b, s.wipe, s.gain, flipped=s.flipped, transform=transform)
        else:  # one image so far (or geometries that do not match yet): show what there is
            only = b if (s.mode == "b") != s.flipped and b is not None else (a if a is not None else b)
            shown = None if only is None else transform(only)
        self._shown = shown
        self._qimage = as_qimage(shown) if shown is not None else None
        self._tints = []
        if s.regions and shown is not None:
            for layer, offset in self._placed():
                labels = getattr(layer.preview, "labels", None)
                pixels = layer.pixels
                if labels is None or pixels is None:
                    continue
                names = list(getattr(layer.preview, "region_names", []))
                weights = np.array([layer.weights.get(n, 1.0) for n in names], np.float32)
                tint = display.region_tint(labels, (pixels.shape[1], pixels.shape[0]),
                                           REGION_COLOURS[:len(names)], weights)
                self._tints.append((as_qimage(tint), tint, offset))
        self.update()

    # -- geometry ---------------------------------------------------------------------------------
    def scale(self) -> float:
        if self._shown is None:
            return 1.0
        if self.settings.zoom > 0.0:
            return self.settings.zoom
        h, w = self._shown.shape[:2]
        return max(1e-3, min(self.width() / w, self.height() / h))

    def image_rect(self) -> QtCore.QRectF:
        """Where the composed image is drawn, in widget pixels."""
        if self._shown is None:
            return QtCore.QRectF()
        h, w = self._shown.shape[:2]
        k = self.scale()
        pan = self.settings.pan if self.settings.zoom > 0.0 else (0.0, 0.0)
        x = (self.width() - w * k) / 2.0 + pan[0]
        y = (self.height() - h * k) / 2.0 + pan[1]
        return QtCore.QRectF(x, y, w * k, h * k)

    def _divider_x(self) -> float:
        if self._shown is None:  # callers ask only while an image is shown
            raise RuntimeError("no image shown: no wipe divider")
        rect = self.image_rect()
        return rect.left() + display.wipe_column(self._shown.shape[1], self.settings.wipe) * self.scale()

    # -- painting ---------------------------------------------------------------------------------
    def paintEvent(self, event: QtGui.QPaintEvent) -> None:  # noqa: N802 - Qt override
        painter = QtGui.QPainter(self)
        painter.fillRect(self.rect(), QtGui.QColor(38, 38, 38))
        if self._qimage is None:
            painter.setPen(QtGui.QColor(170, 170, 170))
            painter.drawText(self.rect(), QtCore.Qt.AlignmentFlag.AlignCenter, self.message or "no preview yet")
            painter.end()
            return
        rect = self.image_rect()
        k = self.scale()
        painter.setRenderHint(QtGui.QPainter.RenderHint.SmoothPixmapTransform, k < 1.0)
        painter.drawImage(rect, self._qimage)
        for qimage, _keep, offset in self._tints:
            painter.drawImage(QtCore.QRectF(rect.left() + offset * k, rect.top(), qimage.width() * k,
                                            qimage.height() * k), qimage)
        for layer, offset in self._placed():
            self._paint_faces(painter, layer, rect.left() + offset * k, rect.top(), k)
        if self.settings.mode == "wipe" and self._second is not None:
            x = self._divider_x()
            painter.setPen(QtGui.QPen(QtGui.QColor(255, 255, 255, 220), 2))
            painter.drawLine(QtCore.QPointF(x, rect.top()), QtCore.QPointF(x, rect.bottom()))
            painter.setBrush(QtGui.QColor(255, 255, 255, 220))
            painter.drawEllipse(QtCore.QPointF(x, rect.center().y()), 6, 6)
        self._paint_labels(painter, rect)
        if self.settings.regions and self._tints:
            self._paint_legend(painter, rect)
        painter.end()

    def _paint_legend(self, painter: QtGui.QPainter, rect: QtCore.QRectF) -> None:
        """The region colours, bottom left of the image."""
        layer = self._placed()[0][0]
        names = list(getattr(layer.preview, "region_names", []))
        metrics = painter.fontMetrics()
        y = rect.bottom() - 8 - metrics.height() * len(names)
        for k, name in enumerate(names):
            colour = QtGui.QColor(*(int(c) for c in REGION_COLOURS[k]))
            top = y + k * metrics.height()
            painter.fillRect(QtCore.QRectF(rect.left() + 8, top + 2, 10, metrics.height() - 4), colour)
            painter.setPen(QtGui.QColor(255, 255, 255))
            painter.drawText(QtCore.QPointF(rect.left() + 22, top + metrics.ascent()),
                             f"{name} {layer.weights.get(name, 1.0):g}")

    def _paint_faces(self, painter: QtGui.QPainter, layer: Layer, left: float, top: float, k: float) -> None:
        s = self.settings
        pixels = layer.pixels
        if pixels is None or not (s.landmarks or s.tracks):
            return
        size = (pixels.shape[1], pixels.shape[0])
        box = getattr(layer.preview, "box")
        for face in getattr(layer.preview, "faces", []):
            points = display.to_image_points(face["landmarks"], box, size)
            screen = (points + 0.5) * k + (left, top)
            if s.landmarks:
                painter.setPen(QtGui.QPen(QtGui.QColor(80, 255, 120), 3))
                painter.drawPoints([QtCore.QPointF(float(x), float(y)) for x, y in screen])
            if s.tracks and face.get("track", -1) >= 0:
                x, y = screen.min(axis=0)
                painter.setPen(QtGui.QColor(255, 230, 90))
                painter.drawText(QtCore.QPointF(float(x), float(y) - 6), f"track {face['track']}")

    def _paint_labels(self, painter: QtGui.QPainter, rect: QtCore.QRectF) -> None:
        s = self.settings
        first, second = (self._second, self._first) if s.flipped else (self._first, self._second)
        names = {"a": [first], "b": [second], "difference": [first, second]}.get(s.mode, [first, second])
        text = {"difference": " - ".join(n.label for n in names if n is not None) + f"  x{s.gain:g}"}.get(
            s.mode, "")
        painter.setPen(QtGui.QColor(255, 255, 255))
        if text:
            painter.drawText(QtCore.QPointF(rect.left() + 8, rect.top() + 18), text)
            return
        if names[0] is not None:
            painter.drawText(QtCore.QPointF(rect.left() + 8, rect.top() + 18), names[0].label)
        if len(names) > 1 and names[1] is not None and s.mode in ("wipe", "side"):
            metrics = painter.fontMetrics()
            label = names[1].label
            painter.drawText(QtCore.QPointF(rect.right() - 8 - metrics.horizontalAdvance(label), rect.top() + 18),
                             label)

    # -- interaction ------------------------------------------------------------------------------
    def _emit(self, **changes: Any) -> None:
        self.settings = replace(self.settings, **changes)
        if "wipe" in changes:
            self._recompose()
        else:
            self.update()
        self.settingsChanged.emit(self.settings)

    def mousePressEvent(self, event: QtGui.QMouseEvent) -> None:  # noqa: N802 - Qt override
        pos = event.position()
        if self._shown is None:
            return
        if self.settings.mode == "wipe" and abs(pos.x() - self._divider_x()) <= DIVIDER_GRAB_PX:
            self._drag = ("wipe", pos, self.settings.pan)
        elif self.settings.zoom > 0.0:
            self._drag = ("pan", pos, self.settings.pan)
        elif self.settings.mode == "wipe" and event.button() == QtCore.Qt.MouseButton.LeftButton:
            self._drag = ("wipe", pos, self.settings.pan)
            self._wipe_to(pos.x())

    def mouseMoveEvent(self, event: QtGui.QMouseEvent) -> None:  # noqa: N802 - Qt override
        pos = event.position()
        near = (self._shown is not None and self.settings.mode == "wipe"
                and abs(pos.x() - self._divider_x()) <= DIVIDER_GRAB_PX)
        self.setCursor(QtCore.Qt.CursorShape.SplitHCursor if near or (self._drag and self._drag[0] == "wipe")
                       else QtCore.Qt.CursorShape.ArrowCursor)
        if self._drag is None:
            return
        kind, start, pan = self._drag
        if kind == "wipe":
            self._wipe_to(pos.x())
        else:
            self._emit(pan=(pan[0] + pos.x() - start.x(), pan[1] + pos.y() - start.y()))

    def _wipe_to(self, x: float) -> None:
        rect = self.image_rect()
        if rect.width() > 0:
            self._emit(wipe=min(1.0, max(0.0, (x - rect.left()) / rect.width())))

    def mouseReleaseEvent(self, event: QtGui.QMouseEvent) -> None:  # noqa: N802 - Qt override
        self._drag = None

    def wheelEvent(self, event: QtGui.QWheelEvent) -> None:  # noqa: N802 - Qt override
        if self._shown is None:
            return
        step = 1.25 if event.angleDelta().y() > 0 else 0.8
        self.zoom_to(self.scale() * step, event.position())

    def zoom_to(self, zoom: float, anchor: QtCore.QPointF | None = None) -> None:
        """Zoom to ``zoom`` screen px per preview px (0 = fit), keeping ``anchor`` (widget px) in place."""
        if zoom <= 0.0 or self._shown is None:
            self._emit(zoom=0.0, pan=(0.0, 0.0))
            return
        zoom = min(MAX_ZOOM, max(MIN_ZOOM, zoom))
        rect, old = self.image_rect(), self.scale()
        anchor = anchor if anchor is not None else QtCore.QPointF(self.width() / 2.0, self.height() / 2.0)
        u, v = (anchor.x() - rect.left()) / old, (anchor.y() - rect.top()) / old
        h, w = self._shown.shape[:2]
        # place preview point (u, v) under the anchor at the new zoom
        pan = (anchor.x() - u * zoom - (self.width() - w * zoom) / 2.0,
               anchor.y() - v * zoom - (self.height() - h * zoom) / 2.0)
        self._emit(zoom=zoom, pan=pan)
