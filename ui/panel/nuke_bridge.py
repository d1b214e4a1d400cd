"""The panel inside Nuke: "Apply to node" writes a parameter set into a FaceBridge node's knobs, and the
panel docks through ``nukescripts.panels.registerWidgetAsPanel``.

``nuke`` is imported only inside the functions that need it, so this module imports (and its pure part,
``knob_values``, is tested) anywhere. Nuke 16 brings PySide6, Nuke 13-15 PySide2 (see ``qt.py``).

The knob names come from the settings schema (``facebridge.schema.knob_names``), as the node's own knob set
does (``host_plugins/common/knobs.py``).
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

from facebridge import schema
from facebridge.settings import RenderParams

KNOBS: dict[str, str] = schema.knob_names()
"""Setting (``regions.<name>`` for a region weight) -> the FaceBridge node's knob name (weight 1 = not listed)."""
NODE_MARKER_KNOB = "facebridge_version"  # every FaceBridge node has it
PANEL_ID = "uk.co.facebridge.panel"
PANEL_CLASS = "ui.panel.nuke_bridge.DockedPanel"


class NukeError(RuntimeError):
    """No FaceBridge node to apply to, or not inside Nuke."""


def knob_values(params: RenderParams) -> dict[str, Any]:
    """Knob name -> value for ``params`` (every knob of ``KNOBS``; absent regions weigh 1)."""
    values: dict[str, Any] = {}
    for field, knob in KNOBS.items():
        if field.startswith("regions."):
            values[knob] = float(params.regions.get(field[8:], 1.0))
        else:
            values[knob] = getattr(params, field)
    return values


def in_nuke() -> bool:
    """Whether this Python runs inside Nuke (``nuke`` already imported, or importable with its GUI)."""
    module = sys.modules.get("nuke")
    if module is None and importlib.util.find_spec("nuke") is None:
        return False
    import nuke  # noqa: F401 - the real module, inside Nuke only

    return True


def facebridge_nodes(nuke: Any) -> list[Any]:
    """FaceBridge nodes, selected ones first."""
    selected = [n for n in nuke.selectedNodes() if n.knob(NODE_MARKER_KNOB) is not None]
    others = [n for n in nuke.allNodes(recurseGroups=True)
              if n.knob(NODE_MARKER_KNOB) is not None and n not in selected]
    return selected + others


def apply_to_node(params: RenderParams, node: Any = None, nuke: Any = None) -> str:
    """Write ``params`` into ``node``'s knobs (default: the selected FaceBridge node, else the only one);
    one undo step. Returns the node's name. Knobs the node lacks are skipped (an older node).

    Raises:
        NukeError: not inside Nuke, or no single FaceBridge node to apply to.
    """
    if nuke is None:
        if not in_nuke():
            raise NukeError("Apply to node works inside Nuke only")
        import nuke
    if node is None:
        nodes = facebridge_nodes(nuke)
        selected = [n for n in nodes if n.isSelected()] if nodes else []
        if len(selected) == 1 or len(nodes) == 1:
            node = (selected or nodes)[0]
        else:
            raise NukeError("select the FaceBridge node to apply to" if nodes else "no FaceBridge node in the script")
    undo = nuke.Undo()
    undo.begin(f"FaceBridge: apply parameters to {node.name()}")
    try:
        for knob, value in knob_values(params).items():
            target = node.knob(knob)
            if target is not None:
                target.setValue(value)
    finally:
        undo.end()
    return str(node.name())


def register_panel() -> None:
    """Make the panel a dockable pane (call from ``menu.py``): Windows > Custom > FaceBridge Panel."""
    import nukescripts

    import ui

    # Nuke evaluates the class path in the script namespace when the pane opens: make "ui" resolvable there
    setattr(sys.modules["__main__"], "ui", ui)
    nukescripts.panels.registerWidgetAsPanel(PANEL_CLASS, "FaceBridge Panel", PANEL_ID)


def _docked_panel_class() -> type:
    from .app import PanelWidget, state_from_environment

    class DockedPanel(PanelWidget):
        """The panel as a Nuke pane: the server and shot come from $FACEBRIDGE_SERVER / $FACEBRIDGE_SHOT."""

        def __init__(self, parent: Any = None) -> None:
            super().__init__(state_from_environment(), apply_to_node=lambda _which, params: apply_to_node(params),
                             parent=parent)

    return DockedPanel


def __getattr__(name: str) -> Any:
    """``DockedPanel`` is built on first use (Qt loads only when Nuke asks for the pane)."""
    if name == "DockedPanel":
        cls = _docked_panel_class()
        globals()["DockedPanel"] = cls
        return cls
    raise AttributeError(name)
