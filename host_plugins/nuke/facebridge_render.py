"""Farm entry point: ``nuke -t facebridge_render.py [--frames A-B] SCRIPT.nk NODE``.

Opens the script and renders the FaceBridge node exactly as its Render button does (see
``facebridge_nuke/render.py``). Exit status: 0 all frames rendered, 1 some frames failed, 2 nothing
could run, 3 cancelled.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from facebridge_nuke.render import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
