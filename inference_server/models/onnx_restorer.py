"""GPEN-BFR face restoration (FaceFusion's ``gpen_bfr_*`` ONNX files), and the shared restore round trip.

Model contract: input ``input`` ``(1, 3, S, S)`` float32 RGB in ``[-1, 1]`` (8-bit ``(x / 255 - 0.5) /
0.5``); output 0 the same shape and range, clipped to ``[-1, 1]`` and mapped back with ``(x + 1) / 2``.
Unlike FaceFusion the result stays float (no rounding to 8 bits).

:func:`restore_aligned` takes any ``run`` callable with that NCHW contract, so a PyTorch GPEN reuses
the same alignment and paste-back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType

import numpy as np

from .aligned_result import (
    DEFAULT_FEATHER,
    AlignedResult,
    from_nchw,
    run_aligned,
    to_nchw,
)
from .alignment import TEMPLATES
from .onnx_session import open_session, run_session

RESTORER_SPECS: Mapping[str, tuple[int, str]] = MappingProxyType({
    # model name: (square size in px, alignment template)
    "gpen_bfr_256": (256, "arcface_128"),
    "gpen_bfr_512": (512, "ffhq_512"),
    "gpen_bfr_1024": (1024, "ffhq_512"),
    "gpen_bfr_2048": (2048, "ffhq_512"),
})


def restorer_preprocess(aligned_rgb: np.ndarray) -> np.ndarray:
    """``(S, S, 3)`` sRGB [0, 1] RGB -> ``(1, 3, S, S)`` float32 in ``[-1, 1]``."""
    return to_nchw(np.asarray(aligned_rgb, np.float32) * 2.0 - 1.0)


def restorer_postprocess(output: np.ndarray) -> np.ndarray:
    """``(1, 3, S, S)`` in ``[-1, 1]`` (clipped) -> ``(S, S, 3)`` float32 sRGB RGB in ``[0, 1]``."""
    return ((np.clip(from_nchw(output, "restorer output"), -1.0, 1.0) + 1.0) * 0.5).astype(np.float32)


def restore_aligned(crop_rgb: np.ndarray, points5: np.ndarray, template: str, size: int,
                    run: Callable[[np.ndarray], np.ndarray], feather: float = DEFAULT_FEATHER) -> AlignedResult:
    """Align, restore with ``run`` and paste back.

    Args:
        crop_rgb: ``(H, W, 3)`` float32 sRGB-encoded RGB in ``[0, 1]``.
        points5: ``(5, 2)`` crop pixels.
        template: alignment template (``arcface_128`` for 256 px GPEN, ``ffhq_512`` otherwise).
        size: the model's square side.
        run: ``(1, 3, size, size)`` float32 RGB in ``[-1, 1]`` -> same shape, same range.
        feather: soft edge of the coverage.
    """
    def process(aligned: np.ndarray) -> np.ndarray:
        return restorer_postprocess(run(restorer_preprocess(aligned)))

    return run_aligned(crop_rgb, points5, template, size, process, feather=feather)


class OnnxRestorer:
    """A GPEN-BFR ONNX file on a device.

    Args:
        path: the ``.onnx`` file.
        device: ``auto | cpu | cuda[:N] | mps``.
        size: the model's square side (256, 512, 1024 or 2048 for the GPEN-BFR files).
        template: alignment template; None takes it from :data:`RESTORER_SPECS` by size.
        feather: soft edge of the paste-back coverage.
    """

    def __init__(self, path: str | Path, device: str = "auto", size: int = 512, template: str | None = None,
                 feather: float = DEFAULT_FEATHER) -> None:
        if template is None:
            by_size = {s: t for s, t in RESTORER_SPECS.values()}
            if size not in by_size:
                raise ValueError(f"no default template for a {size} px restorer; pass template=")
            template = by_size[size]
        if template not in TEMPLATES:
            raise ValueError(f"unknown alignment template {template!r} (known: {', '.join(TEMPLATES)})")
        self.path = Path(path)
        self.size = int(size)
        self.template = template
        self.feather = feather
        self.session = open_session(self.path, device, expected_inputs={"input": (1, 3, self.size, self.size)})

    def run(self, batch: np.ndarray) -> np.ndarray:
        """``(1, 3, S, S)`` float32 in ``[-1, 1]`` -> model output, same shape (not clipped)."""
        return run_session(self.session, {"input": batch})[0]

    def restore(self, crop_rgb: np.ndarray, points5: np.ndarray) -> AlignedResult:
        """Restored face in crop space (``(H, W, 3)`` sRGB [0, 1]) with its coverage."""
        return restore_aligned(crop_rgb, points5, self.template, self.size, self.run, feather=self.feather)
