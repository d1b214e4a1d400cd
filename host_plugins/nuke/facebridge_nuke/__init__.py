"""facebridge inside Foundry Nuke (13 to 16): the FaceBridge node and its render entry point.

Standard library only (Nuke's interpreter may carry an old protobuf): renders go through the
``facebridge`` client run as a sidecar process. ``import facebridge_nuke`` also makes the shared
``host_plugins.common`` package importable from this folder's parent without putting the rest of
that parent (or any site-packages) on ``sys.path``.
"""

import importlib.util
import os
import sys

__version__ = "0.1.0"
NODE_TAG = "facebridge node 1"   # value of the node's 'facebridge_version' knob


def _ensure_common() -> None:
    """Import ``host_plugins`` from ``<this>/../..`` (the folder holding ``nuke/`` and ``common/``)."""
    if "host_plugins" in sys.modules:
        return
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    init = os.path.join(root, "__init__.py")
    if not os.path.isfile(os.path.join(root, "common", "__init__.py")):
        raise ImportError("facebridge: cannot find host_plugins/common next to %s" % os.path.dirname(root))
    spec = importlib.util.spec_from_file_location("host_plugins", init, submodule_search_locations=[root])
    if spec is None or spec.loader is None:
        raise ImportError("facebridge: cannot load host_plugins from %s" % root)
    module = importlib.util.module_from_spec(spec)
    sys.modules["host_plugins"] = module
    spec.loader.exec_module(module)


_ensure_common()
