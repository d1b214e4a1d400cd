"""The Qt binding: PySide6 (a dependency of facebridge).

The panel always runs as its own process in facebridge's environment, never inside a host's Python, so it
needs no second binding (a Nuke 13-15 session, with its Qt 5, starts it as a separate program).
"""

from PySide6 import QtCore, QtGui, QtWidgets

__all__ = ["QtCore", "QtGui", "QtWidgets"]
