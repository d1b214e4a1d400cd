"""blendswap_256: 256 px ffhq_512 target in [0, 1], output used as it comes; source = the source face itself,
aligned on arcface_112_v2 at 112 px, RGB [0, 1]. Facts: FaceFusion 3.8.1 ``processors/modules/face_swapper/core.py``; see :mod:`..swappers`."""

from __future__ import annotations

from ..loading import LoadContext, Loaded
from ..registry import Choice
from ._swapper import load_swapper


def load(ctx: LoadContext, choice: Choice, precision: str) -> Loaded:
    return load_swapper(ctx, choice, denormalise=False, source="image", source_template="arcface_112_v2", source_size=112)
