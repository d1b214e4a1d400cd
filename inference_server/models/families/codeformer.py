"""CodeFormer (FaceFusion's ``codeformer.onnx``, models-3.0.0): a 512 px ``ffhq_512`` enhancer with a fidelity
input ``weight``, fed the session's ``restore_weight`` (FaceFusion 3.8.1 ``face_enhancer/core.py``: a float64
``[w]``, default 0.5). Image contract as every FaceFusion enhancer (:mod:`..onnx_restorer`)."""

from __future__ import annotations

from ._onnx_enhancer import load_onnx_enhancer as load

__all__ = ["load"]
