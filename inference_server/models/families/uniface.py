"""uniface_256: 256 px ffhq_512 target in [-1, 1], output mapped back; source = the source face itself,
aligned on ffhq_512 at 256 px, RGB [0, 1]. Facts: FaceFusion 3.8.1 ``processors/modules/face_swapper/core.py``; see :mod:`..swappers`."""

from __future__ import annotations

from ..loading import LoadContext, Loaded
from ..registry import Choice
from ._swapper import load_swapper


def load(ctx: LoadContext, choice: Choice, precision: str) -> Loaded:
    return load_swapper(ctx, choice, denormalise=True, source="image", source_template="ffhq_512", source_size=256)
