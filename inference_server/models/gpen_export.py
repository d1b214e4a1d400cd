"""Export a GPEN generator to ONNX in the layout of the FaceFusion-style ``gpen_bfr_*.onnx`` files.

Those files take one ``float32[1, 3, S, S]`` tensor named ``input`` (RGB in ``[-1, 1]``) and return one
``float32[1, 3, S, S]`` tensor, named ``output`` here (ONNX runtimes are usually asked for output 0, so
the name is informational). The graph is written with the TorchScript-based exporter, which needs no
package beyond ``onnx``; the file appears under its final name only once it is complete and checked.
"""

from __future__ import annotations

import copy
import os
import warnings
from os import PathLike
from pathlib import Path

import torch
from torch import nn

from .gpen import load_gpen

__all__ = ["INPUT_NAME", "OUTPUT_NAME", "export_from_checkpoint", "export_gpen_onnx"]

INPUT_NAME = "input"
OUTPUT_NAME = "output"


def export_gpen_onnx(module: nn.Module, path: str | PathLike[str], opset: int = 17, size: int | None = None) -> Path:
    """Write ``module`` as an ONNX model at ``path`` and return the path.

    ``module`` maps ``(1, 3, S, S)`` to ``(1, 3, S, S)``; ``S`` defaults to ``module.config.size`` (a
    :class:`~inference_server.models.gpen.GpenGenerator`). The graph is traced in float32 on the CPU with
    a fixed batch of 1, so the module itself is left untouched (a copy is exported if it lives elsewhere).
    The model is written to a temporary name in the same folder, checked with ``onnx.checker``, then
    renamed, so a crash never leaves a truncated file under ``path``.
    """
    import onnx

    if size is None:
        size = int(getattr(getattr(module, "config", None), "size", 0)) or None
    if size is None:
        raise ValueError("export_gpen_onnx: give size= for a module without a .config.size")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    probe = torch.zeros(1, 3, size, size).uniform_(-1.0, 1.0)
    exported = _cpu_float32(module)
    was_training = exported.training
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecation notice of the TorchScript exporter, tracer notes
            torch.onnx.export(exported.eval(), (probe,), str(partial), dynamo=False, opset_version=opset,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], do_constant_folding=True)
        onnx.checker.check_model(str(partial))
        os.replace(partial, target)
    finally:
        exported.train(was_training)
        partial.unlink(missing_ok=True)
    return target


def export_from_checkpoint(checkpoint_path: str | PathLike[str], out_path: str | PathLike[str], opset: int = 17) -> Path:
    """Load a GPEN checkpoint with :func:`~inference_server.models.gpen.load_gpen` and export it to ``out_path``."""
    return export_gpen_onnx(load_gpen(checkpoint_path), out_path, opset=opset)


def _cpu_float32(module: nn.Module) -> nn.Module:
    """``module`` itself when all its tensors are float32 on the CPU, else a float32 CPU copy."""
    tensors = [*module.parameters(), *module.buffers()]
    if all(t.device.type == "cpu" and (t.dtype == torch.float32 or not t.is_floating_point()) for t in tensors):
        return module
    return copy.deepcopy(module).to("cpu", torch.float32)
