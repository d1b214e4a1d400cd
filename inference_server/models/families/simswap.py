"""simswap_256 (arcface_112_v1, ImageNet mean/std input) and simswap_unofficial_512 (arcface_112_v1, [0, 1]);
the output is used as it comes (no de-normalisation, even for the ImageNet input); source = crossface_simswap
of the arcface_w600k_r50 embedding, normalised. Facts: FaceFusion 3.8.1 ``processors/modules/face_swapper/core.py``; see :mod:`..swappers`."""

from __future__ import annotations

from ..loading import LoadContext, Loaded
from ..registry import Choice
from ._swapper import load_swapper


def load(ctx: LoadContext, choice: Choice, precision: str) -> Loaded:
    return load_swapper(ctx, choice, denormalise=False, source="converted_norm")
