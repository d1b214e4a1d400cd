"""Five-point face alignment between a face crop and the square input of a face model.

Convention:
    - Images are ``(H, W, 3)`` float32 RGB, display-referred sRGB-encoded values in ``[0, 1]``.
    - Points are ``(x, y)`` in pixels, pixel centres at integer coordinates, origin top-left (the
      OpenCV ``warpAffine`` convention).
    - ``model_from_crop`` matrices are ``(2, 3)`` float64 similarity transforms mapping crop pixels to
      model pixels; their inverse maps a model's output back to the crop.

The templates are the normalised 5-point layouts used by FaceFusion's model registry (multiply by the
model's square size). ``arcface_112_v2`` times 112 is insightface's ``arcface_src``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import cv2
import numpy as np

from ..faces.geometry import similarity_fit


def _frozen(points: list[tuple[float, float]]) -> np.ndarray:
    array = np.array(points, dtype=np.float64)
    array.setflags(write=False)
    return array


TEMPLATES: Mapping[str, np.ndarray] = MappingProxyType({
    # Order of the rows: image-left eye, image-right eye, nose tip, image-left mouth corner,
    # image-right mouth corner. Values are fractions of the model's square side.
    "arcface_112_v1": _frozen([
        (0.35473214, 0.45658929), (0.64526786, 0.45658929), (0.50000000, 0.61154464),
        (0.37913393, 0.77687500), (0.62086607, 0.77687500),
    ]),
    "arcface_112_v2": _frozen([
        (0.34191607, 0.46157411), (0.65653393, 0.45983393), (0.50022500, 0.64050536),
        (0.37097589, 0.82469196), (0.63151696, 0.82325089),
    ]),
    "arcface_128": _frozen([
        (0.36167656, 0.40387734), (0.63696719, 0.40235469), (0.50019687, 0.56044219),
        (0.38710391, 0.72160547), (0.61507734, 0.72034453),
    ]),
    "ffhq_512": _frozen([
        (0.37691676, 0.46864664), (0.62285697, 0.46912813), (0.50123859, 0.61331904),
        (0.39308822, 0.72541100), (0.61150205, 0.72490465),
    ]),
    "mtcnn_512": _frozen([
        (0.36562865, 0.46733799), (0.63305391, 0.46585885), (0.50019127, 0.61942959),
        (0.39032951, 0.77598822), (0.61178945, 0.77476328),
    ]),
})

# iBUG 68-point indices behind the five alignment points.
_RIGHT_EYE_68 = slice(36, 42)   # subject's right eye = image-left eye
_LEFT_EYE_68 = slice(42, 48)    # subject's left eye = image-right eye
_NOSE_TIP_68 = 30
_MOUTH_IMAGE_LEFT_68 = 48
_MOUTH_IMAGE_RIGHT_68 = 54

# Shrinking an image by more than this factor in one warp would alias with bilinear sampling, so the
# source is first reduced with area averaging (see _warp).
_MAX_BILINEAR_SHRINK = 1.5


def points5_from_68(landmarks68: np.ndarray) -> np.ndarray:
    """The five alignment points from dlib/iBUG 68-point landmarks.

    Rows, in insightface order (image-left eye first): centre of the image-left eye (mean of iBUG
    36-41, the subject's right eye), centre of the image-right eye (mean of 42-47), nose tip (30),
    image-left mouth corner (48), image-right mouth corner (54).

    Args:
        landmarks68: ``(68, 2)`` ``x, y`` pixel coordinates, any float dtype.

    Returns:
        ``(5, 2)`` float64 in the same pixel frame.
    """
    points = np.asarray(landmarks68, dtype=np.float64)
    if points.shape != (68, 2):
        raise ValueError(f"expected (68, 2) landmarks, got shape {points.shape}")
    return np.stack([
        points[_RIGHT_EYE_68].mean(axis=0),
        points[_LEFT_EYE_68].mean(axis=0),
        points[_NOSE_TIP_68],
        points[_MOUTH_IMAGE_LEFT_68],
        points[_MOUTH_IMAGE_RIGHT_68],
    ])


def template_points(template_name: str, size: int) -> np.ndarray:
    """``(5, 2)`` float64 template points in model pixels for a ``size`` x ``size`` model input."""
    if template_name not in TEMPLATES:
        raise ValueError(f"unknown alignment template {template_name!r} (known: {', '.join(TEMPLATES)})")
    return TEMPLATES[template_name] * float(size)


def estimate_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (rotation, uniform scale, translation; no reflection).

    The checked entry to :func:`inference_server.faces.geometry.similarity_fit` (Umeyama, 1991). It is the
    same objective that ``cv2.estimateAffinePartial2D`` refines (with Levenberg-Marquardt) once every
    point is an inlier, but exact, deterministic and free of random sampling.

    Args:
        src: ``(N, 2)`` points, N >= 2, not all equal.
        dst: ``(N, 2)`` corresponding points.

    Returns:
        ``(2, 3)`` float64 matrix ``M`` with ``dst ~ M @ [x, y, 1]``.
    """
    p = np.asarray(src, dtype=np.float64)
    q = np.asarray(dst, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 2 or p.shape != q.shape or len(p) < 2:
        raise ValueError(f"expected two (N, 2) point sets with N >= 2, got {p.shape} and {q.shape}")
    if not (np.isfinite(p).all() and np.isfinite(q).all()):
        raise ValueError("alignment points must be finite")
    if float(((p - p.mean(axis=0)) ** 2).sum()) <= 1e-12:
        raise ValueError("alignment points are degenerate (all at one position)")
    return similarity_fit(p, q)


def estimate_alignment(points5: np.ndarray, template_name: str, size: int) -> np.ndarray:
    """Similarity transform taking the crop's five points onto a template scaled to ``size``.

    FaceFusion fits this with ``cv2.estimateAffinePartial2D(..., RANSAC, ransacReprojThreshold=100)``.
    With five points and that threshold every point is an inlier for any real face, so the result is
    the least-squares similarity, computed here in closed form (:func:`estimate_similarity`).

    Args:
        points5: ``(5, 2)`` crop pixels, order as :func:`points5_from_68`.
        template_name: a key of :data:`TEMPLATES`.
        size: side of the model's square input in pixels.

    Returns:
        ``(2, 3)`` float64 ``model_from_crop`` matrix.
    """
    points = np.asarray(points5, dtype=np.float64)
    if points.shape != (5, 2):
        raise ValueError(f"expected (5, 2) alignment points, got shape {points.shape}")
    return estimate_similarity(points, template_points(template_name, size))


def invert_matrix(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a ``(2, 3)`` affine matrix, as ``(2, 3)`` float64."""
    return cv2.invertAffineTransform(np.asarray(matrix, dtype=np.float64))


def _linear_scale(matrix: np.ndarray) -> float:
    return float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))


def _warp(image: np.ndarray, matrix: np.ndarray, out_hw: tuple[int, int], border: int) -> np.ndarray:
    """``warpAffine`` with bilinear sampling, area-averaging the source first when shrinking a lot.

    OpenCV's ``warpAffine`` has no real ``INTER_AREA`` (it samples bilinearly), so a strong reduction
    (e.g. a 600 px face to a 128 px model square) would alias. When the transform shrinks by more than
    :data:`_MAX_BILINEAR_SHRINK`, the source is first resized with ``INTER_AREA`` to the output's scale
    and the matrix is corrected for it, leaving a near 1:1 bilinear warp.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    scale = _linear_scale(matrix)
    h, w = image.shape[:2]
    if 0.0 < scale < 1.0 / _MAX_BILINEAR_SHRINK:
        small_w, small_h = max(1, round(w * scale)), max(1, round(h * scale))
        kx, ky = small_w / w, small_h / h
        image = cv2.resize(image, (small_w, small_h), interpolation=cv2.INTER_AREA)
        # cv2.resize maps a source pixel centre x to x' = (x + 0.5) * k - 0.5; undo that in the matrix.
        small_from_big = np.array([[kx, 0.0, 0.5 * (kx - 1.0)], [0.0, ky, 0.5 * (ky - 1.0)], [0.0, 0.0, 1.0]])
        matrix = matrix @ np.linalg.inv(small_from_big)
    out_h, out_w = out_hw
    return cv2.warpAffine(np.ascontiguousarray(image), matrix, (out_w, out_h), flags=cv2.INTER_LINEAR,
                          borderMode=border)


def _check_rgb(image: np.ndarray, what: str) -> np.ndarray:
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"{what}: expected an (H, W, 3) RGB image, got shape {array.shape}")
    return array.astype(np.float32, copy=False)


def warp_to_model(crop_rgb: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """The model's square input cut from the crop.

    Sampling is bilinear after an area-averaging pre-reduction when the face is shrunk by more than
    1.5x (see :func:`_warp`); FaceFusion asks for ``INTER_AREA`` here, which ``warpAffine`` treats as
    bilinear. Parts of the square outside the crop repeat the crop's edge pixels (``BORDER_REPLICATE``).

    Args:
        crop_rgb: ``(H, W, 3)`` float32 sRGB-encoded RGB in ``[0, 1]``.
        matrix: ``(2, 3)`` ``model_from_crop`` matrix (:func:`estimate_alignment`).
        size: side of the model square in pixels.

    Returns:
        ``(size, size, 3)`` float32 RGB, same encoding as the crop.
    """
    crop = _check_rgb(crop_rgb, "crop")
    return _warp(crop, matrix, (size, size), cv2.BORDER_REPLICATE)


def warp_to_crop(model_rgb: np.ndarray, matrix: np.ndarray, crop_hw: tuple[int, int]) -> np.ndarray:
    """A model's square output put back into crop pixels (inverse of ``matrix``), edge pixels repeated.

    Only the pixels where :func:`coverage_mask` is above zero carry model content; outside the model
    square the result repeats the square's border and must be masked off.

    Args:
        model_rgb: ``(S, S, 3)`` float32 RGB (any encoding; sampling is linear in the stored values).
        matrix: the ``(2, 3)`` ``model_from_crop`` matrix used to make the model's input.
        crop_hw: ``(H, W)`` of the crop.

    Returns:
        ``(H, W, 3)`` float32.
    """
    model = _check_rgb(model_rgb, "model image")
    return _warp(model, invert_matrix(matrix), _hw(crop_hw), cv2.BORDER_REPLICATE)


def warp_labels_to_crop(labels: np.ndarray, matrix: np.ndarray, crop_hw: tuple[int, int]) -> np.ndarray:
    """Integer label map ``(S, S)`` from model pixels to crop pixels, nearest neighbour, 0 outside."""
    array = np.asarray(labels)
    if array.ndim != 2:
        raise ValueError(f"expected an (S, S) label map, got shape {array.shape}")
    h, w = _hw(crop_hw)
    return cv2.warpAffine(array.astype(np.uint8), invert_matrix(matrix), (w, h), flags=cv2.INTER_NEAREST,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def _hw(crop_hw: tuple[int, int]) -> tuple[int, int]:
    h, w = int(crop_hw[0]), int(crop_hw[1])
    if h < 1 or w < 1:
        raise ValueError(f"crop size must be positive, got {crop_hw}")
    return h, w


def coverage_mask(matrix: np.ndarray, size: int, crop_hw: tuple[int, int], feather: float = 0.1) -> np.ndarray:
    """Where a model's square output lands in the crop, with a soft inward edge.

    Computed analytically per crop pixel (no resampling): each pixel centre is mapped into model pixels
    and its distance ``d`` to the model square's border (the square spans ``[-0.5, size - 0.5]`` in
    pixel-centre coordinates) gives ``smoothstep(d / (feather * size))``. The value is therefore exactly
    0 outside the square, exactly 1 deeper than ``feather * size`` model pixels inside it, and rises
    smoothly (C1) in between, so a paste has no seam.

    Args:
        matrix: ``(2, 3)`` ``model_from_crop`` matrix.
        size: side of the model square in pixels.
        crop_hw: ``(H, W)`` of the crop.
        feather: width of the soft edge as a fraction of the model square's side, in ``[0, 0.5]``;
            0 gives a hard-edged mask.

    Returns:
        ``(H, W)`` float32 in ``[0, 1]``.
    """
    if not 0.0 <= feather <= 0.5:
        raise ValueError(f"feather must be in [0, 0.5], got {feather}")
    h, w = _hw(crop_hw)
    m = np.asarray(matrix, dtype=np.float64)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    u = m[0, 0] * xs + m[0, 1] * ys + m[0, 2]
    v = m[1, 0] * xs + m[1, 1] * ys + m[1, 2]
    edge = size - 0.5
    distance = np.minimum(np.minimum(u + 0.5, edge - u), np.minimum(v + 0.5, edge - v))
    if feather == 0.0:
        return (distance >= 0.0).astype(np.float32)
    t = np.clip(distance / (feather * size), 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32)
