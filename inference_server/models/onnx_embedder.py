"""ArcFace identity embedding (FaceFusion's ``arcface_w600k_r50`` ONNX file).

Model contract: input ``input`` ``(1, 3, 112, 112)`` float32, RGB scaled to ``[-1, 1]`` (8-bit
``x / 127.5 - 1``), the face aligned on ``arcface_112_v2``; output 0: ``(1, 512)`` raw embedding.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .aligned_result import align_crop, to_nchw
from .onnx_session import open_session, run_session

ARCFACE_SIZE = 112
ARCFACE_TEMPLATE = "arcface_112_v2"
ARCFACE_INPUTS = {"input": (1, 3, ARCFACE_SIZE, ARCFACE_SIZE)}


def arcface_preprocess(aligned_rgb: np.ndarray) -> np.ndarray:
    """``(112, 112, 3)`` sRGB [0, 1] RGB -> ``(1, 3, 112, 112)`` float32 in ``[-1, 1]`` (``x * 2 - 1``)."""
    return to_nchw(np.asarray(aligned_rgb, np.float32) * 2.0 - 1.0)


class ArcfaceEmbedder:
    """An ArcFace ONNX file on a device.

    Args:
        path: the ``.onnx`` file.
        device: ``auto | cpu | cuda[:N] | mps``.
    """

    size = ARCFACE_SIZE
    template = ARCFACE_TEMPLATE

    def __init__(self, path: str | Path, device: str = "auto") -> None:
        self.path = Path(path)
        self.session = open_session(self.path, device, expected_inputs=ARCFACE_INPUTS)

    def embed(self, crop_rgb: np.ndarray, points5: np.ndarray) -> np.ndarray:
        """Raw (not normalised) ``(512,)`` float32 embedding of the face at ``points5`` in the crop.

        Args:
            crop_rgb: ``(H, W, 3)`` float32 sRGB-encoded RGB in ``[0, 1]``.
            points5: ``(5, 2)`` crop pixels.
        """
        _, _, aligned = align_crop(crop_rgb, points5, self.template, self.size)
        output = run_session(self.session, {"input": arcface_preprocess(aligned)})[0]
        return np.asarray(output, np.float32).reshape(-1)
