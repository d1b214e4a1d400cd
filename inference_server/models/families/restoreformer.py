"""RestoreFormer++ (FaceFusion's ``restoreformer_plus_plus.onnx``, models-3.0.0): a 512 px ``ffhq_512``
enhancer with the one input ``input`` (FaceFusion 3.8.1 ``face_enhancer/core.py``). Image contract as every
FaceFusion enhancer (:mod:`..onnx_restorer`)."""

from __future__ import annotations

from ._onnx_enhancer import load_onnx_enhancer as load

__all__ = ["load"]
