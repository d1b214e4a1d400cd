"""Default locations on disk, shared by the client and the server. Standard library only."""

import os
from pathlib import Path
from typing import Mapping


def default_cache_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_CACHE_HOME/facebridge`` when set, else ``~/.cache/facebridge``: the shot database and model
    cache of a server started without ``--cache-dir`` (a private one included)."""
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "facebridge"
