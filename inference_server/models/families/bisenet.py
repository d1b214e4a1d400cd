"""BiSeNet face parsers in FaceFusion's ONNX format (bisenet_resnet_18/34; 512 px ffhq_512, ImageNet, 19 labels)."""

from __future__ import annotations

from ..loading import LoadContext, Loaded, loaded_path, model_id, warm_up
from ..registry import Choice


def load(ctx: LoadContext, choice: Choice, precision: str) -> Loaded:
    from ..adapters import ParserAdapter
    from ..onnx_parser import BisenetParser

    ident = model_id(choice)
    parser = BisenetParser(loaded_path(choice), ctx.device)
    warm_up(parser.session)
    return Loaded(choice, ParserAdapter(parser, ident), ident)
