"""inswapper_128 (and its fp16 file): 128 px arcface_128 target in ``[0, 1]``, output used as it comes;
source = the arcface_w600k_r50 embedding through the file's emap (its last initializer). Facts: FaceFusion
3.8.1 ``processors/modules/face_swapper/core.py``; see :mod:`..swappers`."""

from __future__ import annotations

from ..loading import LoadContext, Loaded
from ..registry import Choice
from ._swapper import load_swapper


def load(ctx: LoadContext, choice: Choice, precision: str) -> Loaded:
    return load_swapper(ctx, choice, denormalise=False, source="emap")
