"""The FaceBridge panel: sliders for the compositing knobs, presets, and the render status.

The only module of the plugin that imports Qt, and only when the Open Panel button is pressed:
PySide6 on Nuke 16 and later, PySide2 on Nuke 13 to 15. The panel edits the node's knobs (the knobs
stay the whole truth of a render) and saves/loads the preset JSON the standalone panel and the CLI use.
"""

import importlib
from typing import Any, Callable, Dict, List, Tuple

import nuke

from host_plugins.common.knobs import KNOBS_BY_NAME, REGION_NAMES, knobs_from_params, params_from_knobs
from host_plugins.common.presets import load_preset, save_preset

SLIDER_KNOBS = ("blend",) + tuple("region_" + r for r in REGION_NAMES) + ("grain",)
STEPS = 1000
PRESET_FILTER = "facebridge presets (*.json)"
_open_panels: Dict[str, Any] = {}   # keeps panels alive (Qt deletes unreferenced top-level widgets)


def qt_binding() -> Tuple[str, Any, Any]:
    """``(name, QtCore, QtWidgets)`` of the binding this Nuke ships (either binding, so typed Any)."""
    name = "PySide6" if int(nuke.NUKE_VERSION_MAJOR) >= 16 else "PySide2"
    return name, importlib.import_module(name + ".QtCore"), importlib.import_module(name + ".QtWidgets")


def build_panel(node: Any) -> Any:
    """A QWidget bound to ``node``'s knobs (not shown)."""
    _name, QtCore, QtWidgets = qt_binding()
    QWidget: Any = QtWidgets.QWidget  # the binding's, picked at run time

    class FaceBridgePanel(QWidget):
        def __init__(self) -> None:
            super().__init__()
            self.node = node
            self.setWindowTitle("FaceBridge: %s" % node.name())
            self.sliders: Dict[str, Any] = {}
            layout = QtWidgets.QFormLayout(self)
            for name in SLIDER_KNOBS:
                slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
                slider.setRange(0, STEPS)
                slider.setObjectName(name)
                slider.valueChanged.connect(lambda value, knob=name: self._slider_moved(knob, value))
                self.sliders[name] = slider
                layout.addRow(KNOBS_BY_NAME[name].label, slider)
            buttons = QtWidgets.QHBoxLayout()
            self.render_button = QtWidgets.QPushButton("Render")
            self.render_button.clicked.connect(lambda: node["render"].execute())
            self.load_button = QtWidgets.QPushButton("Load preset...")
            self.load_button.clicked.connect(self._ask_load)
            self.save_button = QtWidgets.QPushButton("Save preset...")
            self.save_button.clicked.connect(self._ask_save)
            for button in (self.render_button, self.load_button, self.save_button):
                buttons.addWidget(button)
            layout.addRow(buttons)
            self.status = QtWidgets.QLabel()
            self.status.setWordWrap(True)
            layout.addRow("status", self.status)
            self.refresh()

        def refresh(self) -> None:
            """Sliders and status from the knobs."""
            for name, slider in self.sliders.items():
                slider.blockSignals(True)
                slider.setValue(int(round(float(node[name].value()) * STEPS)))
                slider.blockSignals(False)
            self.status.setText(str(node["status"].value()))

        def _slider_moved(self, knob: str, value: int) -> None:
            node[knob].setValue(value / float(STEPS))

        def load(self, path: str) -> None:
            params, _name = load_preset(path)
            for knob, value in knobs_from_params(params).items():
                node[knob].setValue(value)
            self.refresh()

        def save(self, path: str) -> None:
            values = {name: node[name].value() for name in KNOBS_BY_NAME}
            save_preset(path, params_from_knobs(values), name=node.name())

        def _ask_load(self) -> None:
            path, _filter = QtWidgets.QFileDialog.getOpenFileName(self, "Load facebridge preset", "", PRESET_FILTER)
            if path:
                self._guarded(self.load, path)

        def _ask_save(self) -> None:
            path, _filter = QtWidgets.QFileDialog.getSaveFileName(self, "Save facebridge preset", "", PRESET_FILTER)
            if path:
                self._guarded(self.save, path)

        def _guarded(self, action: Callable[[str], None], path: str) -> None:
            try:
                action(path)
            except (OSError, ValueError) as exc:
                QtWidgets.QMessageBox.warning(self, "facebridge", str(exc))

    return FaceBridgePanel()


def open_panel(node: Any) -> Any:
    """Show (or raise) the panel of ``node``."""
    key = node.fullName()
    panel = _open_panels.get(key)
    if panel is None:
        panel = build_panel(node)
        _open_panels[key] = panel
    panel.refresh()
    panel.show()
    panel.raise_()
    return panel
