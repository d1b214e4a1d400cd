"""Backends for FaceFusion-format ONNX model files: one import point for the server.

Each backend takes a face crop (``(H, W, 3)`` float32, display-referred sRGB-encoded RGB in ``[0, 1]``)
and the face's five alignment points in crop pixels, aligns the face on the model's template, runs the
model and returns the result warped back into the crop with a coverage mask.

=====================  =======================  ==========  ===============  =====================
class                  model files              size (px)   template         input (RGB, NCHW)
=====================  =======================  ==========  ===============  =====================
InswapperSwapper       inswapper_128(_fp16)     128         arcface_128      ``target`` [0, 1] +
                                                                             ``source`` (1, 512)
ArcfaceEmbedder        arcface_w600k_r50        112         arcface_112_v2   ``input`` [-1, 1]
OnnxRestorer           gpen_bfr_256             256         arcface_128      ``input`` [-1, 1]
OnnxRestorer           gpen_bfr_512/1024/2048   512-2048    ffhq_512         ``input`` [-1, 1]
BisenetParser          bisenet_resnet_18/34     512         ffhq_512         ``input`` ImageNet
=====================  =======================  ==========  ===============  =====================

The modules behind it: :mod:`.alignment` (templates, warps, coverage), :mod:`.onnx_session`
(providers, session opening, input checks), :mod:`.aligned_result` (result type and round trip),
:mod:`.onnx_swapper`, :mod:`.onnx_embedder`, :mod:`.onnx_restorer`, :mod:`.onnx_parser`.
"""

from __future__ import annotations

from .aligned_result import AlignedResult, paste_back, run_aligned
from .onnx_embedder import ArcfaceEmbedder, arcface_preprocess
from .onnx_parser import (
    BISENET_LABELS,
    REGION_LABELS,
    BisenetParser,
    ParsedFace,
    parser_postprocess,
    parser_preprocess,
    parser_region_masks,
)
from .onnx_restorer import (
    RESTORER_SPECS,
    OnnxRestorer,
    restore_aligned,
    restorer_postprocess,
    restorer_preprocess,
)
from .onnx_session import (
    ExecutionProviderError,
    OnnxModelError,
    OnnxModelMissing,
    check_io,
    open_session,
    providers_for,
)
from .onnx_swapper import (
    InswapperSwapper,
    inswapper_postprocess,
    inswapper_preprocess,
    prepare_inswapper_source,
    read_emap,
)

__all__ = [
    "BISENET_LABELS",
    "REGION_LABELS",
    "RESTORER_SPECS",
    "AlignedResult",
    "ArcfaceEmbedder",
    "BisenetParser",
    "ExecutionProviderError",
    "InswapperSwapper",
    "OnnxModelError",
    "OnnxModelMissing",
    "OnnxRestorer",
    "ParsedFace",
    "arcface_preprocess",
    "check_io",
    "inswapper_postprocess",
    "inswapper_preprocess",
    "open_session",
    "parser_postprocess",
    "parser_preprocess",
    "parser_region_masks",
    "paste_back",
    "prepare_inswapper_source",
    "providers_for",
    "read_emap",
    "restore_aligned",
    "restorer_postprocess",
    "restorer_preprocess",
    "run_aligned",
]
