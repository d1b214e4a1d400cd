"""FaceFusion's face enhancers as ONNX files (``gpen_bfr_*``, ``codeformer``, ``gfpgan_1.2/1.3/1.4``,
``restoreformer_plus_plus``), and the shared restore round trip.

Facts from FaceFusion 3.8.1 ``facefusion/processors/modules/face_enhancer/core.py``: every enhancer takes
the same image contract and differs only in size, template and an optional fidelity input.

- Input ``input`` ``(1, 3, S, S)`` float32 RGB in ``[-1, 1]`` (8-bit ``(x / 255 - 0.5) / 0.5``), the face
  aligned on the model's template (``arcface_128`` for gpen_bfr_256, ``ffhq_512`` for the others).
- Input ``weight``, only on models that have it (codeformer): the fidelity weight, fed as FaceFusion does,
  a float64 array of the input's shape (``(1,)``) holding the weight (``restore_weight``, default 0.5).
  Any other input cannot be filled and the file is refused at load with one line.
- Output 0: the same shape and range, clipped to ``[-1, 1]`` and mapped back with ``(x + 1) / 2``. Unlike
  FaceFusion the result stays float (no rounding to 8 bits).

:func:`restore_aligned` takes any ``run`` callable with that NCHW contract, so a PyTorch GPEN reuses
the same alignment and paste-back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np

from .aligned_result import (
    DEFAULT_FEATHER,
    AlignedResult,
    from_nchw,
    run_aligned,
    to_nchw,
)
from .alignment import TEMPLATES
from .onnx_session import OnnxModelError, Shape, check_io, open_session, session_runner

if TYPE_CHECKING:  # (the session type only)
    import onnxruntime as ort

RESTORER_SPECS: Mapping[str, tuple[int, str]] = MappingProxyType({
    # model name: (square size in px, alignment template)
    "gpen_bfr_256": (256, "arcface_128"),
    "gpen_bfr_512": (512, "ffhq_512"),
    "gpen_bfr_1024": (1024, "ffhq_512"),
    "gpen_bfr_2048": (2048, "ffhq_512"),
    "codeformer": (512, "ffhq_512"),
    "gfpgan_1.2": (512, "ffhq_512"),
    "gfpgan_1.3": (512, "ffhq_512"),
    "gfpgan_1.4": (512, "ffhq_512"),
    "restoreformer_plus_plus": (512, "ffhq_512"),
})
IMAGE_INPUT = "input"
WEIGHT_INPUT = "weight"
DEFAULT_WEIGHT = 0.5  # FaceFusion's face_enhancer_weight default, and the restore_weight setting's


def enhancer_inputs(session: ort.InferenceSession, size: int, path: str | Path) -> tuple[int, ...] | None:
    """Check an enhancer session's inputs; the shape to feed its ``weight`` input, or None without one.

    The image input ``input`` must be ``(1, 3, size, size)`` (free dimensions accepted); ``weight`` is
    optional (free dimensions fed as 1, so FaceFusion's ``[1]`` gives ``(1,)``).

    Raises:
        OnnxModelError: one line naming ``path``: no ``input``, a wrong shape or type, or an input that
            cannot be filled.
    """
    inputs = {i.name: i for i in session.get_inputs()}
    expected: dict[str, Shape] = {IMAGE_INPUT: (1, 3, size, size)}
    weight = inputs.get(WEIGHT_INPUT)
    if weight is not None:
        expected[WEIGHT_INPUT] = tuple(None for _ in weight.shape)
    extra = sorted(set(inputs) - set(expected))
    if extra and IMAGE_INPUT in inputs:
        raise OnnxModelError(f"{path}: input(s) {', '.join(repr(n) for n in extra)} cannot be filled (an enhancer "
                             f"gets {IMAGE_INPUT!r}, the aligned face, and {WEIGHT_INPUT!r}, the restore weight, when "
                             "it has one)")
    check_io(session, expected, path)
    if weight is None:
        return None
    return tuple(d if isinstance(d, int) and d > 0 else 1 for d in weight.shape)


def weight_feed(weight: float, shape: tuple[int, ...]) -> np.ndarray:
    """The ``weight`` input: float64 ``shape`` filled with ``weight`` (FaceFusion: ``array([w], double)``)."""
    return np.full(shape, float(weight), np.float64)


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
    """A FaceFusion-format enhancer ONNX file on a device (GPEN-BFR, CodeFormer, GFPGAN, RestoreFormer++).

    Args:
        path: the ``.onnx`` file.
        device: ``auto | cpu | cuda[:N] | mps``.
        size: the model's square side (256, 512, 1024 or 2048 for the GPEN-BFR files, 512 for the others).
        template: alignment template; None takes it from :data:`RESTORER_SPECS` by size.
        feather: soft edge of the paste-back coverage.

    Attributes:
        weight_shape: the shape fed to the model's ``weight`` input; None when it has none (then the
            weight changes nothing and :attr:`takes_weight` is False).
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
        self.session = open_session(self.path, device)
        self._run = session_runner(self.session)  # (IO binding with reused device buffers on CUDA)
        self.weight_shape = enhancer_inputs(self.session, self.size, self.path)

    @property
    def takes_weight(self) -> bool:
        """The model has a ``weight`` input (codeformer), so the restore weight changes its output."""
        return self.weight_shape is not None

    def run(self, batch: np.ndarray, weight: float = DEFAULT_WEIGHT) -> np.ndarray:
        """``(1, 3, S, S)`` float32 in ``[-1, 1]`` -> model output, same shape (not clipped); ``weight`` goes to
        the ``weight`` input when the model has one and is ignored otherwise."""
        feeds = {IMAGE_INPUT: batch}
        if self.weight_shape is not None:
            feeds[WEIGHT_INPUT] = weight_feed(weight, self.weight_shape)
        return self._run(feeds)[0]

    def restore(self, crop_rgb: np.ndarray, points5: np.ndarray, weight: float = DEFAULT_WEIGHT) -> AlignedResult:
        """Restored face in crop space (``(H, W, 3)`` sRGB [0, 1]) with its coverage."""
        return restore_aligned(crop_rgb, points5, self.template, self.size, lambda batch: self.run(batch, weight),
                               feather=self.feather)
