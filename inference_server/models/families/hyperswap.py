"""hyperswap_1a/1b/1c_256: 256 px arcface_128 target in [-1, 1] (mean 0.5, std 0.5), output mapped back
(x * 0.5 + 0.5); source = the L2-normalised arcface_w600k_r50 embedding (FaceFusion's ``embedding_norm``). Facts: FaceFusion 3.8.1 ``processors/modules/face_swapper/core.py``; see :mod:`..swappers`."""

from __future__ import annotations

from ..loading import LoadContext, Loaded
from ..registry import Choice
from ._swapper import load_swapper


def load(ctx: LoadContext, choice: Choice, precision: str) -> Loaded:
    return load_swapper(ctx, choice, denormalise=True, source="embedding_norm")
