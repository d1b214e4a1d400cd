"""``python -m inference_server`` is the ``facebridge`` command."""

from .cli import main

raise SystemExit(main())
