"""The loader shared by FaceFusion's ONNX face enhancers (codeformer, gfpgan, restoreformer families).

Every FaceFusion 3.8.1 enhancer (``facefusion/processors/modules/face_enhancer/core.py``) has the image
contract of :mod:`inference_server.models.onnx_restorer`; only the size, the template and an optional
``weight`` input differ, and those come from the record and the file. The restore weight a session asks for
is applied by :meth:`~inference_server.models.adapters.OnnxRestorerAdapter.with_weight` (the file is loaded
once for every weight).
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
from ..onnx_session import OnnxModelError
from ..registry import Choice


def load_onnx_enhancer(ctx: LoadContext, choice: Choice, precision: str) -> Loaded:
    """Load an enhancer ONNX file: size from the record (else its first input), template from the record
    (else arcface_128 up to 256 px, ffhq_512 above). ``precision`` does not apply: the file runs as saved.

    Raises:
        OnnxModelError: not an ONNX file, or inputs an enhancer cannot fill (one line naming the file).
    """
    from ..adapters import OnnxRestorerAdapter
    from ..onnx_restorer import OnnxRestorer

    record, path = choice.record, loaded_path(choice)
    if file_format(choice) != "onnx":
        raise OnnxModelError(f"{path}: {record.name} is loaded from an ONNX file only")
    size = record.size or onnx_square_size(path)
    restorer = OnnxRestorer(path, ctx.device, size=size, template=record.template or template_for(size))
    warm_up(restorer.session)
    ident = model_id(choice)
    notes = ((f"{record.name}: restore_weight is fed to its 'weight' input (fidelity)",) if restorer.takes_weight
             else ())
    return Loaded(choice, OnnxRestorerAdapter(restorer, ident), ident, notes)
