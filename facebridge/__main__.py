"""``python -m facebridge`` is the ``facebridge`` command."""

from .cli import main

raise SystemExit(main())
