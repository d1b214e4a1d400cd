"""What an aligned face model returns in crop space, and the align -> run -> paste-back round trip.

All images here are display-referred, sRGB-encoded RGB float32 in ``[0, 1]``; composition in linear
light with the artist's controls happens later, outside this package.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from ..faces.sources import SourceFace
from .alignment import coverage_mask, estimate_alignment, warp_to_crop, warp_to_model

DEFAULT_FEATHER = 0.1
"""Soft edge of the paste-back coverage, as a fraction of the model square's side."""


@dataclass(frozen=True, eq=False)
class AlignedResult:
    """A model's output put back into the face crop.

    Attributes:
        image: ``(H, W, 3)`` float32 sRGB-encoded RGB in ``[0, 1]``: the model's output where
            ``coverage > 0`` and the unchanged input crop where ``coverage == 0``.
        coverage: ``(H, W)`` float32 in ``[0, 1]``: 1 well inside the model square, a smooth ramp at its
            edge, exactly 0 outside it.
        matrix: ``(2, 3)`` float64 ``model_from_crop`` similarity used for the model's input.
    """

    image: np.ndarray
    coverage: np.ndarray
    matrix: np.ndarray


@dataclass(frozen=True)
class Restored:
    """A restorer's result in crop space (what every restorer adapter returns to the model stages).

    Attributes:
        image: ``(H, W, 3)`` float32 model space (sRGB-encoded [0, 1]), the restored crop.
        coverage: ``(H, W)`` float32 in ``[0, 1]``, where the restoration applies.
        fp32_fallback: reduced precision gave non-finite values, so fp32 was used.
    """

    image: np.ndarray
    coverage: np.ndarray
    fp32_fallback: bool = False


@runtime_checkable
class AlignedSwapper(Protocol):
    """What the aligned swap stage needs of a swapper (every swapper adapter meets it): the face aligned on
    ``template`` at ``size`` px goes through ``run`` with the source input made by ``source_vector``."""

    @property
    def model_id(self) -> str: ...

    @property
    def template(self) -> str: ...

    @property
    def size(self) -> int: ...

    def source_vector(self, sources: Sequence[SourceFace]) -> np.ndarray:
        """The model's source input for one identity made of ``sources`` (one or more photos)."""
        ...

    def run(self, aligned: np.ndarray, source_vector: np.ndarray) -> np.ndarray: ...


def to_nchw(image_hwc: np.ndarray) -> np.ndarray:
    """``(H, W, C)`` -> contiguous ``(1, C, H, W)`` float32."""
    return np.ascontiguousarray(np.asarray(image_hwc, np.float32).transpose(2, 0, 1)[None])


def from_nchw(batch: np.ndarray, what: str = "model output") -> np.ndarray:
    """First image of an ``(N, C, H, W)`` (or ``(C, H, W)``) array as ``(H, W, C)`` float32."""
    array = np.asarray(batch, dtype=np.float32)
    if array.ndim == 4:
        array = array[0]
    if array.ndim != 3:
        raise ValueError(f"{what}: expected (1, C, H, W), got shape {np.shape(batch)}")
    return np.ascontiguousarray(array.transpose(1, 2, 0))


def check_crop(crop_rgb: np.ndarray, points5: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert: ``(H, W, 3)`` float32 crop and ``(5, 2)`` float64 points."""
    crop = np.asarray(crop_rgb)
    if crop.ndim != 3 or crop.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB crop, got shape {crop.shape}")
    points = np.asarray(points5, dtype=np.float64)
    if points.shape != (5, 2):
        raise ValueError(f"expected (5, 2) alignment points, got shape {points.shape}")
    return crop.astype(np.float32, copy=False), points


def align_crop(crop_rgb: np.ndarray, points5: np.ndarray, template: str, size: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(crop, matrix, aligned)``: the checked ``(H, W, 3)`` float32 crop, its ``(2, 3)`` similarity onto
    ``template`` at ``size`` px (:func:`~.alignment.estimate_alignment`) and the ``(size, size, 3)`` aligned
    square (:func:`~.alignment.warp_to_model`): what every aligned model starts from."""
    crop, points = check_crop(crop_rgb, points5)
    matrix = estimate_alignment(points, template, size)
    return crop, matrix, warp_to_model(crop, matrix, size)


def paste_back(crop_rgb: np.ndarray, model_rgb: np.ndarray, matrix: np.ndarray,
               feather: float = DEFAULT_FEATHER) -> AlignedResult:
    """Warp a model's ``(S, S, 3)`` sRGB-encoded [0, 1] output back into the crop.

    Returns an :class:`AlignedResult` whose ``image`` is the warped output inside the coverage and the
    crop outside it.
    """
    crop = np.asarray(crop_rgb, np.float32)
    if model_rgb.ndim != 3 or model_rgb.shape[0] != model_rgb.shape[1] or model_rgb.shape[2] != 3:
        raise ValueError(f"expected a square (S, S, 3) model image, got shape {model_rgb.shape}")
    size = int(model_rgb.shape[0])
    hw = (crop.shape[0], crop.shape[1])
    coverage = coverage_mask(matrix, size, hw, feather=feather)
    image = np.where(coverage[..., None] > 0.0, warp_to_crop(model_rgb, matrix, hw), crop).astype(np.float32)
    return AlignedResult(image=image, coverage=coverage, matrix=np.asarray(matrix, np.float64))


def run_aligned(crop_rgb: np.ndarray, points5: np.ndarray, template: str, size: int,
                process: Callable[[np.ndarray], np.ndarray], feather: float = DEFAULT_FEATHER) -> AlignedResult:
    """Align the crop on ``template`` at ``size`` px, apply ``process`` and paste the result back.

    Args:
        crop_rgb: ``(H, W, 3)`` float32 sRGB-encoded RGB in ``[0, 1]``.
        points5: ``(5, 2)`` crop pixels (:func:`~.alignment.points5_from_68`).
        template: a key of :data:`~.alignment.TEMPLATES`.
        size: side of the model square.
        process: ``(size, size, 3)`` aligned sRGB [0, 1] image -> ``(size, size, 3)`` image, same encoding.
        feather: soft edge of the coverage (see :func:`~.alignment.coverage_mask`).
    """
    crop, matrix, aligned = align_crop(crop_rgb, points5, template, size)
    output = np.asarray(process(aligned), np.float32)
    if output.shape != (size, size, 3):
        raise ValueError(f"model stage returned shape {output.shape}; expected {(size, size, 3)}")
    return paste_back(crop, output, matrix, feather=feather)
