"""BiSeNet face parsing (FaceFusion's ``bisenet_resnet_18`` / ``bisenet_resnet_34`` ONNX files).

Model contract: input ``input`` ``(1, 3, 512, 512)`` float32, RGB ``/ 255`` then ImageNet mean/std;
output 0: ``(1, 19, 512, 512)`` logits over the CelebAMask-HQ classes of :data:`BISENET_LABELS`.
FaceFusion feeds the parser its swap crop resized to 512; here the face is aligned on ``ffhq_512``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import cv2
import numpy as np

from .aligned_result import DEFAULT_FEATHER, align_crop, to_nchw
from .alignment import (
    coverage_mask,
    warp_labels_to_crop,
)
from .onnx_session import open_session, run_session

PARSER_SIZE = 512
PARSER_TEMPLATE = "ffhq_512"
PARSER_INPUTS = {"input": (1, 3, PARSER_SIZE, PARSER_SIZE)}

BISENET_LABELS: tuple[str, ...] = (
    "background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "eye_g", "l_ear", "r_ear", "ear_r",
    "nose", "mouth", "u_lip", "l_lip", "neck", "neck_l", "cloth", "hair", "hat",
)
"""The 19 classes, index = label value (CelebAMask-HQ order as trained by face-parsing.PyTorch;
``eye_g`` = eyeglasses, ``ear_r`` = earring, ``neck_l`` = necklace)."""

REGION_LABELS: Mapping[str, tuple[int, ...]] = MappingProxyType({
    "eyes": (BISENET_LABELS.index("l_eye"), BISENET_LABELS.index("r_eye")),
    "brows": (BISENET_LABELS.index("l_brow"), BISENET_LABELS.index("r_brow")),
    "nose": (BISENET_LABELS.index("nose"),),
    "mouth": (BISENET_LABELS.index("mouth"), BISENET_LABELS.index("u_lip"), BISENET_LABELS.index("l_lip")),
    "skin": (BISENET_LABELS.index("skin"),),
    "glasses": (BISENET_LABELS.index("eye_g"),),
})
"""Our regions as parser labels. Mouth = inner mouth and both lips. ``glasses`` (label 6, ``eye_g``; FaceFusion
3.8.1 offers it as its ``glasses`` region, ``facefusion/choices.py`` ``face_mask_region_set``) exists only where a
parser runs: the landmark regions have no glasses, so it refines no region weight and is used by name where the
plate's glasses are kept (a small face's swap, :func:`~inference_server.pipeline.stages.kept_glasses`). Ears,
neck and hair are left out (FaceFusion does not offer them either)."""

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


@dataclass(frozen=True, eq=False)
class ParsedFace:
    """Parser labels in crop space.

    Attributes:
        labels: ``(H, W)`` uint8 indices into :data:`BISENET_LABELS`, 0 (background) outside the model
            square.
        coverage: ``(H, W)`` float32 coverage of the model square (see
            :func:`~.alignment.coverage_mask`).
        matrix: ``(2, 3)`` float64 ``model_from_crop`` similarity.
    """

    labels: np.ndarray
    coverage: np.ndarray
    matrix: np.ndarray


def parser_preprocess(aligned_rgb: np.ndarray) -> np.ndarray:
    """``(512, 512, 3)`` sRGB [0, 1] RGB -> ``(1, 3, 512, 512)`` float32, ImageNet-normalised."""
    return to_nchw((np.asarray(aligned_rgb, np.float32) - IMAGENET_MEAN) / IMAGENET_STD)


def parser_postprocess(logits: np.ndarray) -> np.ndarray:
    """``(1, 19, S, S)`` logits -> ``(S, S)`` uint8 labels (argmax over classes)."""
    array = np.asarray(logits)
    if array.ndim == 4:
        array = array[0]
    if array.ndim != 3 or array.shape[0] != len(BISENET_LABELS):
        raise ValueError(f"parser output: expected (1, {len(BISENET_LABELS)}, S, S), got {np.shape(logits)}")
    return np.argmax(array, axis=0).astype(np.uint8)


def parser_region_masks(labels: np.ndarray, crop_hw: tuple[int, int]) -> dict[str, np.ndarray]:
    """Hard masks of our regions (``eyes, brows, nose, mouth, skin, glasses``) from a label map.

    Args:
        labels: ``(h, w)`` integer labels (:attr:`ParsedFace.labels`); resized with nearest neighbour
            when not already ``crop_hw``.
        crop_hw: ``(H, W)`` of the crop.

    Returns:
        Region name -> ``(H, W)`` float32 of 0 and 1 (no feathering).
    """
    array = np.asarray(labels)
    if array.ndim != 2:
        raise ValueError(f"expected an (H, W) label map, got shape {array.shape}")
    h, w = int(crop_hw[0]), int(crop_hw[1])
    if array.shape != (h, w):
        array = cv2.resize(array.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
    return {name: np.isin(array, values).astype(np.float32) for name, values in REGION_LABELS.items()}


class BisenetParser:
    """A BiSeNet face-parsing ONNX file on a device.

    Args:
        path: the ``.onnx`` file.
        device: ``auto | cpu | cuda[:N] | mps``.
        feather: soft edge of the reported coverage (labels themselves are cut at the square's edge).
    """

    size = PARSER_SIZE
    template = PARSER_TEMPLATE

    def __init__(self, path: str | Path, device: str = "auto", feather: float = DEFAULT_FEATHER) -> None:
        self.path = Path(path)
        self.session = open_session(self.path, device, expected_inputs=PARSER_INPUTS)
        self.feather = feather

    def parse(self, crop_rgb: np.ndarray, points5: np.ndarray) -> ParsedFace:
        """Label every crop pixel that the aligned 512 px square covers.

        Args:
            crop_rgb: ``(H, W, 3)`` float32 sRGB-encoded RGB in ``[0, 1]``.
            points5: ``(5, 2)`` crop pixels.
        """
        crop, matrix, aligned = align_crop(crop_rgb, points5, self.template, self.size)
        hw = (crop.shape[0], crop.shape[1])
        labels = parser_postprocess(run_session(self.session, {"input": parser_preprocess(aligned)})[0])
        coverage = coverage_mask(matrix, self.size, hw, feather=self.feather)
        crop_labels = warp_labels_to_crop(labels, matrix, hw)
        crop_labels[coverage <= 0.0] = 0
        return ParsedFace(labels=crop_labels, coverage=coverage, matrix=matrix)
