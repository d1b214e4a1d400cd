"""Read-only array payloads: a cached model output may be shared by many renders, so nobody may write it."""

from __future__ import annotations

from dataclasses import fields, is_dataclass

import numpy as np


class ReadOnlyArrays:
    """Mixin for frozen dataclasses of arrays: every field becomes a read-only view after construction."""

    def __post_init__(self) -> None:
        assert is_dataclass(self)
        for f in fields(self):
            view = np.asarray(getattr(self, f.name)).view()
            view.flags.writeable = False
            object.__setattr__(self, f.name, view)
