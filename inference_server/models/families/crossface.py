"""FaceFusion's crossface embedding converters (crossface_ghost / _simswap / _hififace, FaceFusion 3.8.1
``processors/modules/face_swapper/core.py`` ``forward_convert_embedding``): input ``input`` ``(1, 512)``, an
arcface_w600k_r50 embedding, -> output 0 ``(1, 512)`` in the swapper's identity space."""

from __future__ import annotations

from ..loading import LoadContext, Loaded, loaded_path, model_id
from ..registry import Choice


def load(ctx: LoadContext, choice: Choice, precision: str) -> Loaded:
    import numpy as np

    from ..swappers import EmbeddingConverter

    converter = EmbeddingConverter(loaded_path(choice), ctx.device)
    converter(np.full((1, 512), 0.01, np.float32))  # warm up
    return Loaded(choice, converter, model_id(choice))
