"""Neural face detectors in FaceFusion's ONNX format: yoloface_8n (the yolo layout). The layout is read from the file's
outputs (:mod:`..onnx_detector`)."""

from __future__ import annotations

from ..loading import LoadContext, Loaded, loaded_path, model_id, warm_up
from ..registry import Choice


def load(ctx: LoadContext, choice: Choice, precision: str) -> Loaded:
    from ..onnx_detector import OnnxFaceDetector

    detector = OnnxFaceDetector(loaded_path(choice), ctx.device, name=choice.record.name)
    warm_up(detector.session)
    return Loaded(choice, detector, model_id(choice))
