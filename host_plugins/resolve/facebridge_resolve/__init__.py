"""facebridge inside DaVinci Resolve Studio: a Workspace > Scripts > Utility script.

Standard library only: renders go through the ``facebridge`` client run as a sidecar process.
``import facebridge_resolve`` also makes the shared ``host_plugins.common`` package importable from
this folder's parent without putting the rest of it (or any site-packages) on ``sys.path``.
"""

import importlib.util
import os
import sys

__version__ = "0.1.0"


def _ensure_common() -> None:
    """Import ``host_plugins`` from ``<this>/../..`` (the folder holding ``resolve/`` and ``common/``)."""
    if "host_plugins" in sys.modules:
        return
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if not os.path.isfile(os.path.join(root, "common", "__init__.py")):
        raise ImportError("facebridge: cannot find host_plugins/common next to %s" % os.path.dirname(root))
    spec = importlib.util.spec_from_file_location("host_plugins", os.path.join(root, "__init__.py"),
                                                  submodule_search_locations=[root])
    if spec is None or spec.loader is None:
        raise ImportError("facebridge: cannot load host_plugins from %s" % root)
    module = importlib.util.module_from_spec(spec)
    sys.modules["host_plugins"] = module
    spec.loader.exec_module(module)


_ensure_common()
