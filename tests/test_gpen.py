"""The PyTorch GPEN: official outputs and checkpoint layout, configuration from shapes, loading, ONNX, precision.

Known answers come from ../shared/data/gpen_golden (the official module's state dict layout and outputs);
the other tests build small GPENs with their own weights.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from support import REPO
from torch import nn

from inference_server.models.gpen import (
    GpenConfig,
    GpenGenerator,
    infer_config,
    load_gpen,
)
from inference_server.models.gpen_export import export_from_checkpoint, export_gpen_onnx
from inference_server.models.torch_runner import TorchImageModel, cpu_has_native

GOLDEN_DIR = REPO.parent / "shared" / "data" / "gpen_golden"
TINY = GpenConfig(size=16, style_dim=32, n_mlp=2, narrow=1 / 32)


@pytest.fixture(scope="module")
def golden_dir() -> Path:
    if not GOLDEN_DIR.is_dir():
        pytest.skip(f"GPEN golden data not found at {GOLDEN_DIR} (the shared data folder beside the repository)")
    return GOLDEN_DIR


@pytest.fixture(scope="module")
def tiny64(golden_dir: Path) -> dict[str, Any]:
    return torch.load(golden_dir / "gpen_tiny64.pt", weights_only=True)


def _perturbed(config: GpenConfig, seed: int = 0) -> GpenGenerator:
    """A module with every parameter moved off its initial value (so zero-initialised ones matter)."""
    torch.manual_seed(seed)
    module = GpenGenerator(config).eval()
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return module


def _faces(config: GpenConfig, n: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, config.size, config.size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# --- official outputs and layout ----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["gpen_tiny64", "gpen_small128"])
def test_reproduces_official_outputs(golden_dir: Path, name: str) -> None:
    golden = torch.load(golden_dir / f"{name}.pt", weights_only=True)
    model = load_gpen(golden["state_dict"])
    assert model.config == GpenConfig(**golden["config"])
    with torch.inference_mode():
        out = model(golden["input"])
    assert out.shape == golden["output"].shape and out.dtype == torch.float32
    assert (out - golden["output"]).abs().max().item() < 1e-4


@pytest.mark.parametrize(("name", "n_params"), [("GPEN-BFR-512", 71_005_223), ("GPEN-BFR-256", 18_879_010)])
def test_state_dict_layout_is_the_official_one(golden_dir: Path, name: str, n_params: int) -> None:
    official = json.loads((golden_dir / f"{name}.keys.json").read_text())
    config = GpenConfig(**official["config"])
    state = GpenGenerator(config).state_dict()
    assert {k: list(v.shape) for k, v in state.items()} == official["state_dict_shapes"]
    assert list(state) == list(official["state_dict_shapes"])  # same order, so saved files look alike
    assert sum(v.numel() for k, v in state.items() if not k.endswith(".kernel")) == n_params
    assert infer_config(state) == config


# --- configuration from shapes ------------------------------------------------------------------------

@pytest.mark.parametrize("config", [
    GpenConfig(size=32, channel_multiplier=2, narrow=0.25),
    GpenConfig(size=256, style_dim=64, n_mlp=4, channel_multiplier=1, narrow=1 / 64),
    GpenConfig(size=64, style_dim=48, n_mlp=3, channel_multiplier=2, narrow=0.1, isconcat=False),
    GpenConfig(size=64, style_dim=32, n_mlp=1, channel_multiplier=1, narrow=0.05, blur_kernel=(1, 2, 1)),
    GpenConfig(size=8, style_dim=16, n_mlp=0, narrow=0.03),
], ids=["32-cm2-n0.25", "256-sd64-mlp4", "64-added-features", "64-fir3", "8-no-mlp"])
def test_config_is_inferred_from_a_saved_state_dict(tmp_path: Path, config: GpenConfig) -> None:
    original = _perturbed(config)
    path = tmp_path / "gpen.pth"
    torch.save(original.state_dict(), path)
    loaded = load_gpen(path)
    assert loaded.config == config
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    x = _faces(config)
    with torch.inference_mode():
        assert torch.equal(loaded(x), original(x))


def test_widths_off_the_official_table_are_kept_explicitly() -> None:
    config = GpenConfig(size=64, style_dim=32, n_mlp=1, channels=(24, 20, 16, 12, 8))
    inferred = infer_config(GpenGenerator(config).state_dict())
    assert inferred.channels == (24, 20, 16, 12, 8) and inferred.widths() == config.widths()


@pytest.mark.parametrize("wrap", [
    lambda sd: {"params_ema": sd},
    lambda sd: {"g_ema": {f"module.{k}": v for k, v in sd.items()}, "d": {"x": torch.zeros(1)}},
    lambda sd: {"state_dict": sd, "epoch": 3},
    lambda sd: {f"module.{k}": v for k, v in sd.items()},
], ids=["params_ema", "g_ema+module", "state_dict", "module"])
def test_common_checkpoint_wrappers_load(wrap, tmp_path: Path) -> None:
    original = _perturbed(TINY)
    torch.save(wrap(original.state_dict()), tmp_path / "wrapped.pt")
    loaded = load_gpen(tmp_path / "wrapped.pt")
    x = _faces(TINY)
    with torch.inference_mode():
        assert torch.equal(loaded(x), original(x))


def test_not_a_gpen_gives_one_clear_line(tmp_path: Path) -> None:
    good = GpenGenerator(TINY).state_dict()
    cases = {
        "other.pth": ({"conv.weight": torch.zeros(3, 3, 3, 3)}, "not a GPEN FullGenerator state dict"),
        "missing.pth": ({k: v for k, v in good.items() if k != "generator.to_rgbs.0.bias"}, "missing key"),
        "extra.pth": ({**good, "generator.extra.weight": torch.zeros(1)}, "unexpected key"),
        "shape.pth": ({**good, "generator.to_rgb1.bias": torch.zeros(1, 4, 1, 1)}, "shape mismatch"),
    }
    for name, (state, problem) in cases.items():
        torch.save(state, tmp_path / name)
        with pytest.raises(ValueError, match=problem) as info:
            load_gpen(tmp_path / name)
        message = str(info.value)
        assert message.startswith(str(tmp_path / name)) and "\n" not in message
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pth: cannot read"):
        load_gpen(tmp_path / "junk.pth")
    torch.save(GpenGenerator(TINY), tmp_path / "pickled.pt")
    with pytest.raises(ValueError, match="pickled.pt: holds Python objects"):
        load_gpen(tmp_path / "pickled.pt")
    with pytest.raises(ValueError, match="expects input"):
        GpenGenerator(TINY)(torch.zeros(1, 3, 32, 32))


# --- ONNX ---------------------------------------------------------------------------------------------

def test_onnx_export_agrees_with_torch_and_the_official_output(tiny64: dict[str, Any], tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort

    model = load_gpen(tiny64["state_dict"])
    path = export_gpen_onnx(model, tmp_path / "gpen_bfr_64.onnx")
    assert path == tmp_path / "gpen_bfr_64.onnx" and sorted(p.name for p in tmp_path.iterdir()) == [path.name]
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["input"] and [o.name for o in graph.output] == ["output"]
    assert [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim] == [1, 3, 64, 64]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for k in range(2):
        x = tiny64["input"][k:k + 1]
        (out,) = session.run(None, {"input": x.numpy()})
        with torch.inference_mode():
            assert np.abs(out - model(x).numpy()).max() < 1e-4
        assert np.abs(out - tiny64["output"][k:k + 1].numpy()).max() < 1e-4


def test_export_from_checkpoint(tmp_path: Path) -> None:
    import onnxruntime as ort

    original = _perturbed(TINY)
    torch.save({"params_ema": original.state_dict()}, tmp_path / "g.pth")
    path = export_from_checkpoint(tmp_path / "g.pth", tmp_path / "out" / "g.onnx", opset=17)
    x = _faces(TINY, n=1)
    (out,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(["output"], {"input": x.numpy()})
    with torch.inference_mode():
        assert np.abs(out - original(x).numpy()).max() < 1e-4


# --- precision runner ---------------------------------------------------------------------------------

def test_bf16_stays_close_to_fp32(tiny64: dict[str, Any]) -> None:
    x = tiny64["input"][:1].numpy()  # one face: bf16 convolutions are slow on CPUs without native bf16
    fp32 = TorchImageModel(load_gpen(tiny64["state_dict"]), "cpu", "fp32")(x)
    bf16 = TorchImageModel(load_gpen(tiny64["state_dict"]), "cpu", "bf16", allow_slow_cpu=True)(x)
    assert (fp32.precision_used, fp32.fell_back) == ("fp32", False)
    assert (bf16.precision_used, bf16.fell_back) == ("bf16", False)
    assert bf16.output.dtype == np.float32 and bf16.output.shape == x.shape
    assert np.abs(fp32.output - tiny64["output"][:1].numpy()).max() < 1e-4
    error = np.abs(bf16.output - fp32.output)
    assert error.max() < 0.25 and error.mean() < 0.04


class _BrokenWhenReduced(nn.Module):
    """Identity-like model whose reduced-precision output is NaN for items with a positive mean."""

    def __init__(self) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.full((1,), 2.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x * self.gain
        if out.dtype != torch.float32:
            out = torch.where(x.mean(dim=(1, 2, 3), keepdim=True) > 0, torch.nan, out)
        return out


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_non_finite_items_are_recomputed_in_fp32(precision: str) -> None:
    runner = TorchImageModel(_BrokenWhenReduced(), "cpu", precision, allow_slow_cpu=True)
    x = np.stack([np.full((3, 4, 4), v, np.float32) for v in (-0.5, 0.25, -0.125, 0.75)])
    result = runner(x)
    assert result.fell_back and result.fallback_items == (1, 3) and result.precision_used == precision
    assert np.array_equal(result.output, x * 2)
    clean = runner(-np.abs(x))
    assert not clean.fell_back and clean.fallback_items == ()


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_without_cpu_support_runs_fp32(precision: str) -> None:
    runner = TorchImageModel(_BrokenWhenReduced(), "cpu", precision)
    assert runner.requested_precision == precision
    if cpu_has_native(precision):
        assert runner.precision == precision and runner.note is None
    else:
        assert runner.precision == "fp32" and precision in (runner.note or "")
        result = runner(np.ones((1, 3, 2, 2), np.float32))
        assert result.precision_used == "fp32" and not result.fell_back


def test_runner_lifecycle_and_refusals() -> None:
    runner = TorchImageModel(_perturbed(TINY), "cpu", "bf16", allow_slow_cpu=True)
    runner.warm_up(16)
    assert runner(_faces(TINY).numpy()).output.shape == (2, 3, 16, 16)
    runner.unload()
    with pytest.raises(RuntimeError, match="unloaded"):
        runner(_faces(TINY).numpy())
    with pytest.raises(ValueError, match="precision"):
        TorchImageModel(nn.Identity(), "cpu", "int8")
    with pytest.raises(ValueError, match="batch"):
        TorchImageModel(nn.Identity(), "cpu")(np.zeros((3, 4, 4), np.float32))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            TorchImageModel(nn.Identity(), "cuda:0")
