"""In-memory memos shared by the renders of one server (they save time, never change pixels)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..store.memo import Memo


def _nbytes(value: object) -> int:
    arrays = value if isinstance(value, tuple) else (value,)
    return sum(a.nbytes for a in arrays if isinstance(a, np.ndarray))


@dataclass(frozen=True)
class RenderMemos:
    """In-memory memos shared by the renders of one server; every value is a pure function of its key, so
    a hit gives the same pixels as a miss (they only save time on the next frame or slider move).

    - ``working``: the exposure-normalised working-size plate crop, by (frame hash, box, working side).
    - ``matched``: the colour-matched face of a model output, by (model key, colour-stage controls).
    - ``composited``: a face's composited result at frame size, by (model key, controls): (face, mask, flags,
      reach box) and, when an occluder ran, its keep-mask; a neighbour's result is reused when the next frame is
      rendered.
    - ``plate_identity``: the identity embedding of a plate face (quality checks), by (frame, landmarks).
    """

    working: Memo[tuple[float, np.ndarray]]
    matched: Memo[np.ndarray]
    composited: Memo[tuple[np.ndarray, ...]]
    plate_identity: Memo[np.ndarray]

    @classmethod
    def create(cls, budget_bytes: int = 768 * 1024**2) -> "RenderMemos":
        third = budget_bytes // 3
        return cls(Memo(third, _nbytes), Memo(third, _nbytes), Memo(third, _nbytes), Memo(1 << 16))
