"""XSeg occluders in FaceFusion's ONNX format (xseg_1/2/3; 256 px NHWC BGR [0, 1] in, a 1 = face-seen mask out).

Facts from FaceFusion 3.8.1 ``facefusion/face_masker.py``; contract and processing in :mod:`..onnx_occluder`.
"""

from __future__ import annotations

from ..loading import Loaded, LoadContext, loaded_path, model_id, warm_up
from ..registry import Choice


def load(ctx: LoadContext, choice: Choice, precision: str) -> Loaded:
    from ..onnx_occluder import OCCLUDER_TEMPLATE, OccluderAdapter, XsegOccluder

    ident = model_id(choice)
    occluder = XsegOccluder(loaded_path(choice), ctx.device, template=choice.record.template or OCCLUDER_TEMPLATE)
    warm_up(occluder.session)
    return Loaded(choice, OccluderAdapter(occluder, ident), ident)
