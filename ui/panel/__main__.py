"""``python -m ui.panel``: the artist panel (the same as ``facebridge panel``)."""

from .cli import main

raise SystemExit(main())
