"""A dim scene-linear plate (a face in low light, the camera's noise around black) has pixels of negative
luminance in the skin. The classical swap's shading correction fits log(Y_target / Y_source); one such sample
made the fit, and so the whole swapped face, NaN (found from a RuntimeWarning in the suite). Samples whose log is
undefined are now left out of the fit, which is what zero weight on them gives, bit for bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support import load_rgb8, srgb8_to_linear

from inference_server.compositing import colour
from inference_server.faces.geometry import face_size
from inference_server.faces.sources import prepare_sources
from inference_server.pipeline.crops import face_crop_box
from inference_server.pipeline.face_render import FaceRenderer
from inference_server.pipeline.settings import RenderSettings

SOURCE = "fr_rose_leslie.jpg"


@pytest.fixture(scope="module")
def dim_face(faces_dir: Path, dlib_models) -> tuple[np.ndarray, np.ndarray]:
    """(crop, landmarks in it): fr_obama 5.6 stops darker in linear light with Gaussian noise of sigma 0.004 (a
    night shot's plate: about a tenth of the crop's pixels have luminance below -1e-3, many of them skin)."""
    rgb8 = load_rgb8(faces_dir / "fr_obama.jpg")
    landmarks = dlib_models.detect_with_fallback(rgb8, 0.25)[0].landmarks.astype(np.float32)
    plate = srgb8_to_linear(rgb8)
    box = face_crop_box(landmarks, plate.shape[:2])
    noise = np.random.default_rng(0).normal(0.0, 0.004, plate[box.slices].shape).astype(np.float32)
    crop = np.ascontiguousarray(plate[box.slices] * np.float32(0.02) + noise)
    return crop, landmarks - np.array([box.x0, box.y0], np.float32)


def test_a_dim_noisy_plate_gets_a_finite_swapped_face(dim_face: tuple[np.ndarray, np.ndarray], faces_dir: Path,
                                                      dlib_models) -> None:
    crop, landmarks = dim_face
    negative = (crop @ colour.LUMA) < -1e-3
    assert negative.mean() > 0.05  # the premise: plenty of undefined logs
    source = prepare_sources([(SOURCE, load_rgb8(faces_dir / SOURCE))], dlib_models)
    h, w = crop.shape[:2]
    done = FaceRenderer(source, [SOURCE], RenderSettings(quality_checks=False), "dim", None, None).render(
        crop, face_crop_box(landmarks, (h, w)), landmarks, "dim-plate")
    live = done.mask > 0
    assert live.sum() > 0.1 * live.size
    assert np.isfinite(done.face[live]).all()  # before: every live pixel was NaN


def test_the_shading_fit_leaves_out_undefined_samples_as_zero_weight_would(
        dim_face: tuple[np.ndarray, np.ndarray]) -> None:
    """The field with the undefined samples in ``weight`` equals, bit for bit, the field with their weight set
    to 0 (which never reaches the log); on samples that are all defined nothing changes."""
    crop, landmarks = dim_face
    h, w = crop.shape[:2]
    src = np.clip(crop * np.float32(1.3) + np.float32(0.01), 0.0, None)  # a brighter, positive "source"
    weight = np.zeros((h, w), np.float32)
    x0, y0, x1, y1 = (int(v) for v in (*landmarks.min(0), *landmarks.max(0)))
    weight[y0:y1, x0:x1] = 1.0
    centre = (float(landmarks[:, 0].mean()), float(landmarks[:, 1].mean()))
    stride = 3
    field = colour.shading_field(src, crop, weight, centre, face_size(landmarks), 2, stride=stride)
    undefined = colour.luminance(crop[::stride, ::stride]) + np.float32(1e-3) <= 0  # (the crop has no NaN)
    assert (undefined & (weight[::stride, ::stride] > 0)).sum() > 100
    zeroed = weight.copy()
    zeroed[::stride, ::stride][undefined] = 0.0
    expected = colour.shading_field(src, crop, zeroed, centre, face_size(landmarks), 2, stride=stride)
    assert np.isfinite(field).all() and not np.allclose(field, 1.0)
    assert np.array_equal(field.view(np.uint32), expected.view(np.uint32))
