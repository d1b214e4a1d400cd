"""ArcFace identity embedders in FaceFusion's ONNX format (arcface_w600k_r50; 112 px arcface_112_v2, [-1, 1])."""

from __future__ import annotations

from ..loading import LoadContext, Loaded, loaded_path, model_id, warm_up
from ..onnx_embedder import ArcfaceEmbedder
from ..registry import Choice


def load(ctx: LoadContext, choice: Choice, precision: str) -> Loaded:
    embedder = ArcfaceEmbedder(loaded_path(choice), ctx.device)
    warm_up(embedder.session)
    return Loaded(choice, embedder, model_id(choice))
