"""Neural 68-point landmarkers in FaceFusion's ONNX format: peppa_wutz (one output of points and confidences). The layout is read from the file's
outputs (:mod:`..onnx_landmarker`)."""

from __future__ import annotations

from ..loading import LoadContext, Loaded, loaded_path, model_id, warm_up
from ..registry import Choice


def load(ctx: LoadContext, choice: Choice, precision: str) -> Loaded:
    from ..onnx_landmarker import OnnxLandmarker

    landmarker = OnnxLandmarker(loaded_path(choice), ctx.device, name=choice.record.name)
    warm_up(landmarker.session)
    return Loaded(choice, landmarker, model_id(choice))
