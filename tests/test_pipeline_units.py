"""Pure pipeline pieces: crop boxes, exposure, compositing, provenance hashing, device choice."""

from __future__ import annotations

import numpy as np
import pytest

from inference_server.pipeline.composite import composite_face
from inference_server.pipeline.crops import Box, exposure_scale, face_crop_box
from inference_server.provenance import output_metadata, params_hash
from inference_server.server.device import resolve_device
from inference_server.server.errors import InvalidRequest


def test_crop_box_grows_and_clips() -> None:
    pts = np.array([[100, 100], [200, 220]], np.float32)
    box = face_crop_box(pts, (1000, 1000), margin=0.5)
    assert box == Box(40, 0, 261, 281)  # grow = 0.5 x 120 px; twice that upward, clipped at the top
    clipped = face_crop_box(pts, (250, 230), margin=0.5)
    assert clipped.x1 == 230 and clipped.y1 == 250


def test_exposure_scale_only_for_hot_crops() -> None:
    normal = np.full((10, 10, 3), 0.3, np.float32)
    assert exposure_scale(normal) == 1.0
    hot = np.full((10, 10, 3), 4.5, np.float32)
    hot[0, 0, 0] = np.nan
    assert exposure_scale(hot) == pytest.approx(5.0)


def test_composite_touches_only_rgb_inside_mask_and_keeps_nonfinite() -> None:
    plate = np.random.default_rng(0).random((20, 30, 5), dtype=np.float32)
    plate[5, 6, 1] = np.nan
    out = plate.copy()
    box = Box(4, 3, 14, 13)
    face = np.full((10, 10, 3), 0.9, np.float32)
    mask = np.zeros((10, 10), np.float32)
    mask[1:9, 1:9] = 0.5
    mask[2, 3] = 1.0
    written = composite_face(out, plate, [0, 1, 2], box, face, mask)
    assert written == 64 - 1  # the NaN pixel (row 5, col 6 = mask row 2, col 2) is kept as is
    assert np.isnan(out[5, 6, 1])
    changed = ~((out == plate) | (np.isnan(out) & np.isnan(plate)))
    assert not changed[..., 3:].any()
    rows, cols = np.nonzero(changed.any(axis=2))
    assert rows.min() >= 4 and rows.max() <= 11 and cols.min() >= 5 and cols.max() <= 12
    assert out[5, 7, 0] == pytest.approx(plate[5, 7, 0] + 1.0 * (0.9 - plate[5, 7, 0]))


def test_params_hash_is_canonical_and_sensitive() -> None:
    a = params_hash({"blend": 1.0, "mode": "swap"}, ["s1"], ["m1"])
    assert a == params_hash({"mode": "swap", "blend": 1.0}, ["s1"], ["m1"])
    assert a != params_hash({"mode": "swap", "blend": 0.5}, ["s1"], ["m1"])
    assert a != params_hash({"mode": "swap", "blend": 1.0}, ["s2"], ["m1"])
    meta = output_metadata("swap", ["m1", "m2"], a, ["s1"])
    assert meta["facebridge:ai_processed"] == 1 and meta["facebridge:models"] == "m1,m2"
    assert all(k.startswith("facebridge:") for k in meta)


def test_device_resolution_on_this_machine() -> None:
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in {"cpu", "mps"} or resolve_device("auto").startswith("cuda:")
    with pytest.raises(InvalidRequest, match="unknown device"):
        resolve_device("tpu")
    with pytest.raises(InvalidRequest, match="expected cuda or cuda:N"):
        resolve_device("cuda:x")
    with pytest.raises(InvalidRequest, match=r"cuda:99.*available"):
        resolve_device("cuda:99")
