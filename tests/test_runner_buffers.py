"""Reused device buffers in the PyTorch runner and ONNX Runtime's IO binding, and faces batched across frames
(issue 15).

The staged path (the one a GPU runs: inputs and outputs through buffers kept per batch shape) is run here on
the CPU (``staged=True``, no pinned memory) and must give the same numbers as the plain path. The batch API
(``TorchGpenAdapter.restore_many``, ``RestoreStage.run_many``, ``AlignedSwapStage.run_many``) must give what
one call per face gives, on a real face (matplotlib's Grace Hopper photo, landmarks by dlib).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from onnx_fixtures import inswapper_emap, make_inswapper
from support import DarkeningSwapper
from torch import nn

from inference_server.models.adapters import TorchGpenAdapter
from inference_server.models.gpen import GpenConfig, GpenGenerator
from inference_server.models.onnx_session import (
    BoundRunner,
    open_session,
    run_session,
    session_runner,
)
from inference_server.models.torch_runner import STAGED_SHAPES, TorchImageModel
from inference_server.pipeline.crops import face_crop_box
from inference_server.pipeline.stages import AlignedSwapStage, RestoreStage

SMALL = GpenConfig(size=32, style_dim=32, n_mlp=2, narrow=1 / 16)


def _gpen(seed: int = 0) -> GpenGenerator:
    torch.manual_seed(seed)
    return GpenGenerator(SMALL).eval()


def _batch(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (n, 3, SMALL.size, SMALL.size)).astype(np.float32)


def test_staged_path_gives_the_plain_numbers_and_reuses_its_buffers() -> None:
    module = _gpen()
    plain = TorchImageModel(module, "cpu")
    staged = TorchImageModel(_gpen(), "cpu", staged=True)
    assert not plain.staged and staged.staged
    first, second = _batch(2, 1), _batch(2, 2)
    out1 = staged(first).output
    buffers = staged._staging[(2, 3, SMALL.size, SMALL.size)]
    pointers = (buffers.device_in32.data_ptr(), buffers.device_in.data_ptr())
    assert buffers.device_out is not None
    out_pointer = buffers.device_out.data_ptr()
    kept = out1.copy()
    out2 = staged(second).output
    assert (buffers.device_in32.data_ptr(), buffers.device_in.data_ptr()) == pointers
    assert buffers.device_out.data_ptr() == out_pointer
    assert np.array_equal(out1, kept), "a returned array must not be a reused buffer"
    assert not np.shares_memory(out2, buffers.device_out.numpy())
    np.testing.assert_array_equal(out1, plain(first).output)
    np.testing.assert_array_equal(out2, plain(second).output)


def test_buffers_are_kept_for_a_bounded_number_of_shapes() -> None:
    runner = TorchImageModel(_gpen(), "cpu", staged=True)
    for n in range(1, STAGED_SHAPES + 3):
        runner(_batch(n, n))
    assert list(runner._staging) == [(n, 3, SMALL.size, SMALL.size) for n in range(3, STAGED_SHAPES + 3)]
    runner.warm_up(SMALL.size, batch=3)  # an existing shape: used again, moved to the end
    assert list(runner._staging)[-1] == (3, 3, SMALL.size, SMALL.size)
    runner.unload()
    assert not runner._staging


class _InfWhenReduced(nn.Module):
    """Doubles its input; in reduced precision item 1 becomes +inf (a "black face")."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x * 2
        if x.dtype != torch.float32:
            out = out.clone()
            out[1] = torch.inf
        return out


def test_staged_reduced_precision_retries_broken_items_in_fp32() -> None:
    x = _batch(3, 5)
    for staged in (False, True):
        runner = TorchImageModel(_InfWhenReduced(), "cpu", "bf16", allow_slow_cpu=True, staged=staged)
        result = runner(x)
        assert result.fallback_items == (1,) and result.fell_back
        np.testing.assert_array_equal(result.output[1], x[1] * 2)  # recomputed in fp32
        bf16 = torch.from_numpy(x[[0, 2]]).to(torch.bfloat16).float().numpy() * 2
        np.testing.assert_array_equal(result.output[[0, 2]], bf16)


# --- faces batched across frames -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def frames(dlib_models) -> list[tuple[np.ndarray, np.ndarray]]:
    """Three model-space crops of Grace Hopper's face under a small camera move, with their landmarks."""
    import matplotlib

    photo = cv2.imread(str(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"))
    assert photo is not None
    rgb8 = cv2.cvtColor(photo, cv2.COLOR_BGR2RGB)
    face = dlib_models.detect(rgb8)[0]
    out = []
    for k in range(3):
        matrix = cv2.getRotationMatrix2D((256.0, 300.0), 2.0 * k, 1.0 + 0.03 * k)
        moved = cv2.warpAffine(rgb8, matrix, (rgb8.shape[1], rgb8.shape[0]), flags=cv2.INTER_LINEAR)
        points = (face.landmarks @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)
        box = face_crop_box(points, moved.shape[:2])
        crop = moved[box.y0:box.y1, box.x0:box.x1].astype(np.float32) / 255.0
        out.append((crop, points - np.array([box.x0, box.y0], np.float32)))
    return out


def _adapter() -> TorchGpenAdapter:
    return TorchGpenAdapter(TorchImageModel(_gpen(3), "cpu"), SMALL.size, "ffhq_512", "small-gpen")


def test_restore_many_equals_one_call_per_face(frames: list[tuple[np.ndarray, np.ndarray]]) -> None:
    adapter = _adapter()
    crops, points = [c for c, _ in frames], [p for _, p in frames]
    many = adapter.restore_many(crops, points)
    assert len(many) == 3 and adapter.restore_many([], []) == []
    for crop, pts, batched in zip(crops, points, many, strict=True):
        single = adapter.restore(crop, pts)
        assert batched.image.shape == crop.shape and not batched.fp32_fallback
        np.testing.assert_array_equal(batched.coverage, single.coverage)
        np.testing.assert_allclose(batched.image, single.image, atol=2e-5)
        assert float(np.abs(batched.image - crop).max()) > 0.05  # the model changed the face
    with pytest.raises(ValueError, match="landmark"):
        adapter.restore_many(crops, points[:2])


def test_stage_run_many_equals_run(frames: list[tuple[np.ndarray, np.ndarray]]) -> None:
    crops, points = [c for c, _ in frames], [p for _, p in frames]
    for stage in (RestoreStage(_adapter()), AlignedSwapStage(DarkeningSwapper(), _adapter())):
        identity = ("source",)
        many = stage.run_many(crops, points, identity=identity)  # type: ignore[arg-type]  # identity: labels stand in for sources
        for crop, pts, batched in zip(crops, points, many, strict=True):
            single = stage.run(crop, pts, None, identity=identity)  # type: ignore[arg-type]  # (as above)
            assert batched.keys() == single.keys()
            for key in single:  # float16 payload arrays: a last-bit difference before rounding may flip a ULP
                atol = 1e-3 if single[key].dtype == np.float16 else 2e-5
                np.testing.assert_allclose(batched[key], single[key], atol=atol, err_msg=key)
            assert float(np.abs(many[0]["delta"].astype(np.float32)).max()) > 0.05  # the stage changed the face


# --- ONNX Runtime IO binding -----------------------------------------------------------------------------

def test_bound_onnx_runner_gives_run_session_numbers_and_reuses_device_values(tmp_path: Path) -> None:
    """The IO-binding path a CUDA session takes, run here with CPU OrtValues: the same outputs as
    ``run_session``, the same bound memory on every call of one shape, results that are the caller's own."""
    session = open_session(make_inswapper(tmp_path), "cpu")
    assert not isinstance(session_runner(session), BoundRunner)  # the CPU takes host arrays directly
    bound = BoundRunner(session, "cpu")
    rng = np.random.default_rng(7)
    feeds = [{"target": rng.random((1, 3, 128, 128), dtype=np.float32),
              "source": rng.normal(size=(1, 512)).astype(np.float32) @ inswapper_emap()} for _ in range(2)]
    first = bound(feeds[0])[0]
    kept = first.copy()
    pointers = {name: value.data_ptr() for name, value in bound._inputs.items()}
    outputs = [value.data_ptr() for value in bound._binding.get_outputs()]
    second = bound(feeds[1])[0]
    assert {name: value.data_ptr() for name, value in bound._inputs.items()} == pointers
    assert [value.data_ptr() for value in bound._binding.get_outputs()] == outputs
    assert np.array_equal(first, kept), "a result must not be the bound output memory"
    np.testing.assert_array_equal(first, run_session(session, feeds[0])[0])
    np.testing.assert_array_equal(second, run_session(session, feeds[1])[0])
    assert not np.array_equal(first, second)
