"""hififace_unofficial_256: 256 px mtcnn_512 target in [-1, 1], output mapped back; source = crossface_hififace
of the arcface_w600k_r50 embedding, normalised. Facts: FaceFusion 3.8.1 ``processors/modules/face_swapper/core.py``; see :mod:`..swappers`."""

from __future__ import annotations

from ..loading import LoadContext, Loaded
from ..registry import Choice
from ._swapper import load_swapper


def load(ctx: LoadContext, choice: Choice, precision: str) -> Loaded:
    return load_swapper(ctx, choice, denormalise=True, source="converted_norm")
