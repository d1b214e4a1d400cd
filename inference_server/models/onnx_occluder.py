"""XSeg occlusion masks (FaceFusion's ``xseg_1`` / ``xseg_2`` / ``xseg_3`` ONNX files, DeepFaceLab's XSeg).

Model contract (facts from FaceFusion 3.8.1, ``facefusion/face_masker.py``: ``create_static_model_set``,
``create_occlusion_mask``, ``forward_occlude_face``):

- input ``input`` ``(1, 256, 256, 3)`` float32, **NHWC**, **BGR** (FaceFusion's frames are BGR and it does
  not reorder them), ``/ 255`` so ``[0, 1]``; no mean or std;
- output 0, first image: ``(256, 256, 1)`` (NHWC) where 1 = face seen, 0 = something in front of it (hand,
  hair, glasses, prop) or not face at all; FaceFusion clips it to ``[0, 1]``, resizes it to its crop, takes
  the minimum over the occluders used, then softens it with ``GaussianBlur(sigma=5)`` followed by
  ``(clip(m, 0.5, 1) - 0.5) * 2`` (the blurred edge's lower half becomes exactly 0, so the kept area stays
  inside the model's own outline).

FaceFusion runs the occluder on the swapper's crop resized to 256 (its default swapper, hyperswap_1a_256,
crops ``arcface_128`` at 256 px); here the face is aligned on ``arcface_128`` at 256 px directly, the softening
is done at that size (sigma 5 model pixels, as FaceFusion's default) and the result is warped back to the crop.
Outside the model square the mask repeats its border (a hand crossing the square's edge goes on beyond it).

Images are display-referred sRGB-encoded RGB float32 in ``[0, 1]`` (the model stages' space).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .aligned_result import align_crop
from .alignment import invert_matrix
from .onnx_session import open_session, run_session

OCCLUDER_SIZE = 256
OCCLUDER_TEMPLATE = "arcface_128"
OCCLUDER_INPUTS = {"input": (1, OCCLUDER_SIZE, OCCLUDER_SIZE, 3)}
BLUR_SIGMA = 5.0
"""FaceFusion's softening blur, in model pixels."""
SNAP = 1e-6
"""Keep-mask values within this of 0 or 1 are exactly 0 or 1 (a blurred constant is 1 to float rounding)."""


def occluder_preprocess(aligned_rgb: np.ndarray) -> np.ndarray:
    """``(S, S, 3)`` sRGB ``[0, 1]`` RGB -> ``(1, S, S, 3)`` float32 BGR (NHWC), clipped to ``[0, 1]``."""
    array = np.asarray(aligned_rgb, np.float32)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"occluder input: expected an (S, S, 3) RGB image, got shape {array.shape}")
    return np.ascontiguousarray(np.clip(array[..., ::-1], 0.0, 1.0)[None])


def occluder_postprocess(output: np.ndarray) -> np.ndarray:
    """The model's output ``(1, S, S, 1)`` (also ``(S, S, 1)``, ``(1, S, S)`` or ``(S, S)``) -> ``(S, S)``
    float32 clipped to ``[0, 1]``: 1 = face seen, 0 = occluded."""
    array = np.asarray(output, np.float32)
    if array.ndim == 4:
        array = array[0]
    if array.ndim == 3:
        if array.shape[-1] == 1:
            array = array[..., 0]
        elif array.shape[0] == 1:
            array = array[0]
    if array.ndim != 2 or array.shape[0] != array.shape[1]:
        raise ValueError(f"occluder output: expected (1, S, S, 1), got {np.shape(output)}")
    return np.clip(np.nan_to_num(array, nan=1.0), 0.0, 1.0).astype(np.float32)


def soften_keep(mask: np.ndarray, sigma: float = BLUR_SIGMA) -> np.ndarray:
    """FaceFusion's softening of an occlusion mask: ``(clip(blur(m, sigma), 0.5, 1) - 0.5) * 2``.

    ``(S, S)`` float32 in ``[0, 1]`` -> same; values within :data:`SNAP` of 0 or 1 become exactly 0 or 1.
    """
    m: np.ndarray = np.clip(np.asarray(mask, np.float32), 0.0, 1.0)
    if sigma > 0.0:
        m = cv2.GaussianBlur(m, (0, 0), float(sigma))
    return snap((np.clip(m, 0.5, 1.0) - 0.5) * 2.0)


def snap(mask: np.ndarray) -> np.ndarray:
    """``mask`` clipped to ``[0, 1]`` with values within :data:`SNAP` of either end set to it (float32)."""
    m = np.clip(np.asarray(mask, np.float32), 0.0, 1.0)
    m[m < SNAP] = 0.0
    m[m > 1.0 - SNAP] = 1.0
    return m


def keep_to_crop(keep: np.ndarray, matrix: np.ndarray, crop_hw: tuple[int, int]) -> np.ndarray:
    """A model-space keep-mask ``(S, S)`` warped back to crop pixels ``(H, W)`` (bilinear, border repeated).

    Args:
        keep: ``(S, S)`` float32 in ``[0, 1]``.
        matrix: the ``(2, 3)`` ``model_from_crop`` similarity the model's input was cut with.
        crop_hw: ``(H, W)`` of the crop.
    Returns:
        ``(H, W)`` float32 in ``[0, 1]``, exactly 0 wherever every model pixel sampled is 0.
    """
    h, w = int(crop_hw[0]), int(crop_hw[1])
    warped = cv2.warpAffine(np.ascontiguousarray(keep, np.float32), invert_matrix(matrix), (w, h),
                            flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return snap(warped)


@dataclass(frozen=True, eq=False)
class Occlusion:
    """An occluder's answer for one crop.

    Attributes:
        keep: ``(H, W)`` float32 in ``[0, 1]`` over the crop: 1 where the face is seen (a model may act),
            0 where something is in front of it (the plate stays).
        model_keep: ``(S, S)`` float32 softened keep-mask in model space.
        matrix: ``(2, 3)`` float64 ``model_from_crop`` similarity.
    """

    keep: np.ndarray
    model_keep: np.ndarray
    matrix: np.ndarray


class XsegOccluder:
    """An XSeg occluder ONNX file (FaceFusion format) on a device.

    Args:
        path: the ``.onnx`` file.
        device: ``auto | cpu | cuda[:N] | mps``.
        template: alignment template of the 256 px input (``arcface_128``, see the module docstring).
    """

    size = OCCLUDER_SIZE

    def __init__(self, path: str | Path, device: str = "auto", template: str = OCCLUDER_TEMPLATE) -> None:
        self.path = Path(path)
        self.template = template
        self.session = open_session(self.path, device, expected_inputs=OCCLUDER_INPUTS)

    def model_keep(self, aligned_rgb: np.ndarray) -> np.ndarray:
        """``(256, 256, 3)`` aligned sRGB RGB -> ``(256, 256)`` softened keep-mask (1 = face seen)."""
        raw = occluder_postprocess(run_session(self.session, {"input": occluder_preprocess(aligned_rgb)})[0])
        return soften_keep(raw)

    def occlusion(self, crop_rgb: np.ndarray, points5: np.ndarray) -> Occlusion:
        """The keep-mask of every crop pixel.

        Args:
            crop_rgb: ``(H, W, 3)`` float32 sRGB-encoded RGB in ``[0, 1]``.
            points5: ``(5, 2)`` crop pixels.
        """
        crop, matrix, aligned = align_crop(crop_rgb, points5, self.template, self.size)
        hw = (crop.shape[0], crop.shape[1])
        keep = self.model_keep(aligned)
        return Occlusion(keep=keep_to_crop(keep, matrix, hw), model_keep=keep, matrix=matrix)


@dataclass(frozen=True)
class OccluderAdapter:
    """An :class:`XsegOccluder` behind the model stages' occluder interface (68 landmarks in, keep-mask out)."""

    occluder: XsegOccluder
    model_id: str

    def keep(self, crop_model: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """``(H, W)`` float32 keep-mask of the crop (1 = face seen, 0 = something in front: the plate stays)."""
        from .alignment import points5_from_68

        return self.occluder.occlusion(np.clip(crop_model, 0.0, 1.0), points5_from_68(landmarks)).keep
