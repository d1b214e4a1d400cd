"""GFPGAN 1.2 / 1.3 / 1.4 (FaceFusion's ``gfpgan_1.x.onnx``, models-3.0.0): 512 px ``ffhq_512`` enhancers with
the one input ``input`` (FaceFusion 3.8.1 ``face_enhancer/core.py``). Image contract as every FaceFusion
enhancer (:mod:`..onnx_restorer`); a file with a ``weight`` input would get the restore weight too."""

from __future__ import annotations

from ._onnx_enhancer import load_onnx_enhancer as load

__all__ = ["load"]
