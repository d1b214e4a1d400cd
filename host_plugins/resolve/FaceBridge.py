"""facebridge for DaVinci Resolve Studio: Workspace > Scripts > FaceBridge.

`facebridge install resolve` copies this launcher into Resolve's per-user Fusion/Scripts/Utility
folder with the two paths below filled in. To install by hand, copy it there and set PLUGIN_DIR to
this folder (host_plugins/resolve) and CLI to the facebridge command (a JSON array), or set the
environment variables FACEBRIDGE_RESOLVE_PLUGIN and FACEBRIDGE_CLI before starting Resolve.
"""

import os
import sys

# Both filled in by `facebridge install resolve`; CLI is a JSON array such as
# ["/venv/bin/python", "-m", "facebridge"].
PLUGIN_DIR = ""
CLI = ""

_plugin = PLUGIN_DIR or os.environ.get("FACEBRIDGE_RESOLVE_PLUGIN", "")
if CLI:
    os.environ.setdefault("FACEBRIDGE_CLI", CLI)
if not _plugin or not os.path.isdir(os.path.join(_plugin, "facebridge_resolve")):
    print("facebridge: the plugin folder is not set: run `facebridge install resolve` again")
else:
    if _plugin not in sys.path:
        sys.path.insert(0, _plugin)
    import facebridge_resolve.menu_script

    facebridge_resolve.menu_script.main(globals())
