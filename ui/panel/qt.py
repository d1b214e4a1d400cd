"""The Qt binding: PySide6 (Nuke 16, the standalone panel), else PySide2 (Nuke 13-15).

Only the names both bindings share are used by the panel (``Signal``, enum scopes such as
``Qt.ConnectionType.QueuedConnection``), so the modules here are the whole difference.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # checked against PySide6's stubs: the panel uses only names PySide2 shares
    from PySide6 import QtCore, QtGui, QtWidgets
else:
    try:
        from PySide6 import QtCore, QtGui, QtWidgets
    except ImportError:  # pragma: no cover - Nuke 13-15
        from PySide2 import QtCore, QtGui, QtWidgets

__all__ = ["QtCore", "QtGui", "QtWidgets"]
