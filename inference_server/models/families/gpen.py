"""GPEN face restoration: FaceFusion's gpen_bfr_* ONNX files and the official ``.pth`` checkpoints (PyTorch).

An ONNX file takes its size from the record (else from its first input) and its template from the record
(else arcface_128 up to 256 px, ffhq_512 above); a checkpoint's size comes from its weights.
"""

from __future__ import annotations

from ..loading import (
    LoadContext,
    Loaded,
    file_format,
    loaded_path,
    model_id,
    onnx_square_size,
    template_for,
    warm_up,
)
from ..registry import Choice


def load(ctx: LoadContext, choice: Choice, precision: str) -> Loaded:
    record, path = choice.record, loaded_path(choice)
    notes: list[str] = []
    ident = model_id(choice)
    if file_format(choice) == "onnx":
        from ..adapters import OnnxRestorerAdapter
        from ..onnx_restorer import OnnxRestorer

        size = record.size or onnx_square_size(path)
        restorer = OnnxRestorer(path, ctx.device, size=size, template=record.template or template_for(size))
        warm_up(restorer.session)
        return Loaded(choice, OnnxRestorerAdapter(restorer, ident), ident, tuple(notes))
    from ..adapters import TorchGpenAdapter
    from ..gpen import load_gpen
    from ..torch_runner import TorchImageModel

    module = load_gpen(path)
    size = int(module.config.size)
    runner = TorchImageModel(module, ctx.device, precision, allow_slow_cpu=ctx.slow_cpu_precision)
    runner.warm_up(size)
    if runner.note:
        notes.append(f"{record.name}: {runner.note}")
    ident = f"{ident}:{runner.precision}"  # the precision that runs: it decides the pixels
    return Loaded(choice, TorchGpenAdapter(runner, size, record.template or template_for(size), ident),
                  ident, tuple(notes))
