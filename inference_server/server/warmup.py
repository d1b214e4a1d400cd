"""Modules a render needs but the server's start does not: imported on a background thread when a shot analysis
first analyses a frame new (a first render is coming), so the first frame does not pay for them on its critical
path. A replayed analysis does not start it: a re-render from cached model outputs never needs these modules, and
the import (GIL-bound) would only slow its replay (0.83-1.02 s -> 1.26-1.34 s measured).

``scipy.spatial`` (one Delaunay triangulation in the classical swap's model stage) costs 0.4-0.5 s of CPU to
import, nearly all of it holding the GIL; the server starts without it (``test_architecture``) and, before this,
the first frame imported it while the other frame thread waited. Imported beside the analysis, it overlaps the
HOG detection and the decoding, which release the GIL (at the server's start it would slow the client's session
set-up instead).
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Sequence

_LOG = logging.getLogger(__name__)

RENDER_MODULES = ("scipy.spatial",)


def _import_all(modules: Sequence[str]) -> None:
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:  # the render that needs it fails where it imports it, with its own message
            _LOG.warning("warm-up import of %s failed: %s", name, exc)


class WarmImports:
    """Imports ``modules`` on a daemon thread, once, the first time :meth:`start` is called (any thread).

    A render that needs one of them meanwhile waits on Python's import lock for that module rather than import
    it a second time, so the result is the same whether or not the warm-up ran first.
    """

    def __init__(self, modules: Sequence[str] = RENDER_MODULES) -> None:
        self.modules = tuple(modules)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> threading.Thread:
        """The warm-up thread: started by the first call, the same one after."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=_import_all, args=(self.modules,), daemon=True,
                                                name="facebridge-warm-imports")
                self._thread.start()
            return self._thread
