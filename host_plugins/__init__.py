"""Host side of facebridge: one thin adapter per host (``nuke/``, ``resolve/``) and the stdlib-only
pieces they share (``common/``).

Inside Nuke or Resolve only the standard library is safe, so the plugins load this package from its
folder (not from site-packages). The settings schema and the frame-token parser they need live in the
``facebridge`` package beside this one (``facebridge.schema``, ``facebridge.tokens``, both stdlib-only);
importing this package makes that sibling importable the same way when it is not already, without
putting the rest of its parent folder (site-packages, say) on ``sys.path``.
"""

import importlib.util
import os
import sys


def _ensure_facebridge() -> None:
    """Make ``facebridge`` importable from ``<this>/../facebridge`` when it is not importable already."""
    if "facebridge" in sys.modules:
        return
    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "facebridge")
    init = os.path.join(root, "__init__.py")
    if not os.path.isfile(init):
        raise ImportError("facebridge: cannot find the facebridge package next to %s" % os.path.dirname(root))
    spec = importlib.util.spec_from_file_location("facebridge", init, submodule_search_locations=[root])
    if spec is None or spec.loader is None:
        raise ImportError("facebridge: cannot load %s" % init)
    module = importlib.util.module_from_spec(spec)
    sys.modules["facebridge"] = module
    spec.loader.exec_module(module)


_ensure_facebridge()
