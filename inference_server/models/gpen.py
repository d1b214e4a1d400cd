"""GPEN face restoration network (``FullGenerator`` of yangxy/GPEN) in plain PyTorch.

The module tree, parameter names and buffers follow the official ``face_model/gpen_model.py`` so the
official checkpoints (``GPEN-BFR-512.pth``, ``GPEN-BFR-256.pth``) load with ``strict=True`` and give the
same image. No compiled extension is needed: the FIR resampling (``upfirdn2d``) and the biased, scaled
leaky ReLU are written with ordinary torch ops, so the model runs on any device and exports to ONNX.

Network in one paragraph: an encoder of stride-2 convolutions turns the ``S x S`` face into feature maps
at ``S, S/2, ..., 4`` and a latent code; the latent goes through the StyleGAN2 mapping MLP and modulates
a StyleGAN2 synthesis network. Where StyleGAN2 injects random noise, GPEN concatenates (``isconcat``) or
adds the encoder's feature map of the same resolution, which makes the forward pass deterministic.

Convention:
    - input ``(N, 3, S, S)`` float, RGB, nominally ``[-1, 1]`` (8-bit sRGB ``/ 127.5 - 1``)
    - output ``(N, 3, S, S)`` float, RGB, nominally ``[-1, 1]`` (not clamped; values slightly outside occur)
    - ``S`` is the checkpoint's size (a power of two); the dtype of the computation is the parameters'
"""

from __future__ import annotations

import math
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from os import PathLike
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["GpenConfig", "GpenGenerator", "fused_leaky_relu", "infer_config", "load_gpen", "upfirdn2d"]

_LRELU_SLOPE = 0.2
_LRELU_GAIN = math.sqrt(2.0)
_DEFAULT_TAPS = (1.0, 3.0, 3.0, 1.0)  # the RGB skip upsampler always uses it, whatever blur_kernel says
_WRAPPER_KEYS = ("params_ema", "g_ema", "state_dict", "params", "model")
_PREFIXES = ("module.", "_orig_mod.")


@dataclass(frozen=True)
class GpenConfig:
    """Hyper-parameters of a GPEN ``FullGenerator``.

    ``channels`` is normally ``None``: the width at each resolution then follows the official table
    (``512 * narrow`` up to 32 px, ``(16384 / r) * channel_multiplier * narrow`` from 64 px on, truncated to
    an int). It holds explicit widths for ``4, 8, ..., size`` only when a checkpoint's widths cannot be
    written as that table. ``lr_mlp`` is a runtime scale that no checkpoint records (official value 0.01).
    """

    size: int
    style_dim: int = 512
    n_mlp: int = 8
    channel_multiplier: float = 2
    narrow: float = 1.0
    isconcat: bool = True
    blur_kernel: tuple[float, ...] = (1, 3, 3, 1)
    lr_mlp: float = 0.01
    channels: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.size < 4 or self.size & (self.size - 1):
            raise ValueError(f"GPEN size must be a power of two >= 4, got {self.size}")
        if self.channels is not None and len(self.channels) != self.log_size - 1:
            raise ValueError(f"channels must list {self.log_size - 1} widths (4 .. {self.size} px), got {len(self.channels)}")
        if any(w < 1 for w in self.widths().values()):
            raise ValueError(f"narrow={self.narrow} leaves a layer without channels: {self.widths()}")

    @property
    def log_size(self) -> int:
        return self.size.bit_length() - 1

    def widths(self) -> dict[int, int]:
        """Channels of the feature maps at each resolution ``4 .. size``."""
        resolutions = [2**i for i in range(2, self.log_size + 1)]
        if self.channels is not None:
            return dict(zip(resolutions, self.channels, strict=True))
        return {r: _table_width(r, self.channel_multiplier, self.narrow) for r in resolutions}


def _table_width(resolution: int, channel_multiplier: float, narrow: float) -> int:
    # Same operand order as the official table, so float truncation agrees.
    if resolution <= 32:
        return int(512 * narrow)
    return int((16384 // resolution) * channel_multiplier * narrow)


# ---------------------------------------------------------------------------------------------------------
# Functional pieces
# ---------------------------------------------------------------------------------------------------------

def upfirdn2d(x: Tensor, kernel: Tensor, up: int = 1, down: int = 1, pad: tuple[int, int] = (0, 0)) -> Tensor:
    """Upsample by zero insertion, pad, filter with a 2-D FIR kernel, downsample by striding.

    ``x`` is ``(N, C, H, W)``; ``kernel`` is ``(kh, kw)``, the same filter for every channel, or
    ``(C, 1, kh, kw)``, one per channel; it is applied as a true convolution (flipped). ``pad`` is
    ``(before, after)`` on both axes and may be negative (crops). Output size per axis:
    ``(H * up + before + after - kh) // down + 1``. Dtype and device follow ``x``.
    """
    c = x.shape[1]
    if kernel.dim() == 2:
        kernel = kernel[None, None].expand(c, 1, kernel.shape[0], kernel.shape[1])
    before, after = pad
    if up > 1:
        # Zero insertion as a transposed convolution with a unit filter: exact, and no reshape that
        # would hide the shapes from a traced graph. It leaves out the trailing up - 1 zeros: padded below.
        x = F.conv_transpose2d(x, torch.ones_like(kernel[:, :, :1, :1]).to(x.dtype), stride=up, groups=c)
        after += up - 1
    padding = 0
    if before == after >= 0:
        padding = before  # the convolution pads by itself: no padded copy
    else:
        x = F.pad(x, (max(before, 0), max(after, 0), max(before, 0), max(after, 0)))
        if before < 0 or after < 0:
            y0, y1 = max(-before, 0), x.shape[2] - max(-after, 0)
            x0, x1 = max(-before, 0), x.shape[3] - max(-after, 0)
            x = x[:, :, y0:y1, x0:x1]
    x = F.conv2d(x, torch.flip(kernel, (2, 3)).to(x.dtype), padding=padding, groups=c)
    return x[:, :, ::down, ::down] if down > 1 else x


def fused_leaky_relu(x: Tensor, bias: Tensor) -> Tensor:
    """``sqrt(2) * leaky_relu(x + bias, 0.2)`` with ``bias`` ``(C,)`` broadcast over dim 1 of ``x``."""
    shape = (1, -1) + (1,) * (x.dim() - 2)
    return F.leaky_relu(x + bias.view(shape), _LRELU_SLOPE).mul_(_LRELU_GAIN)


def _fir_kernel(taps: tuple[float, ...], gain: float = 1.0) -> Tensor:
    """Separable 2-D kernel ``outer(taps, taps)`` normalised to sum 1, times ``gain``: ``(k, k)`` float32."""
    k = torch.tensor(taps, dtype=torch.float32)
    k2 = torch.outer(k, k)
    return k2 / k2.sum() * gain


# ---------------------------------------------------------------------------------------------------------
# Layers (attribute names are those of the official checkpoints)
# ---------------------------------------------------------------------------------------------------------

class _Blur(nn.Module):
    """FIR filter of ``channels`` maps with fixed padding (and optional zero-insertion upsampling).

    ``kernel`` is a persistent ``(k, k)`` buffer because the checkpoints store it. The channel count and
    kernel size are kept as plain ints so that a traced (ONNX) graph sees a constant filter shape.
    """

    kernel: Tensor  # a registered buffer (moves with the module's device and dtype)

    def __init__(self, taps: tuple[float, ...], channels: int, pad: tuple[int, int], gain: float = 1.0,
                 up: int = 1) -> None:
        super().__init__()
        self.register_buffer("kernel", _fir_kernel(taps, gain))
        self.channels, self.size, self.pad, self.up = channels, len(taps), pad, up

    def forward(self, x: Tensor) -> Tensor:
        per_channel = self.kernel[None, None].expand(self.channels, 1, self.size, self.size)
        return upfirdn2d(x, per_channel, up=self.up, pad=self.pad)


def _upsample_2x(taps: tuple[float, ...], channels: int) -> _Blur:
    """2x FIR upsampling (gain 4 keeps the mean), e.g. of the RGB skip path."""
    p = len(taps) - 2
    return _Blur(taps, channels, ((p + 1) // 2 + 1, p // 2), gain=4.0, up=2)


class _PixelNorm(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class _EqualLinear(nn.Module):
    """Linear layer with run-time weight scaling ``lr_mul / sqrt(in)``; optional fused leaky ReLU."""

    def __init__(self, in_dim: int, out_dim: int, bias_init: float = 0.0, lr_mul: float = 1.0,
                 activate: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activate = activate

    def forward(self, x: Tensor) -> Tensor:
        if self.activate:
            return fused_leaky_relu(F.linear(x, self.weight * self.scale), self.bias * self.lr_mul)
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class _EqualConv2d(nn.Module):
    """Bias-free convolution with run-time weight scaling ``1 / sqrt(in * k * k)``."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int, padding: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel_size, kernel_size))
        self.scale = 1.0 / math.sqrt(in_ch * kernel_size**2)
        self.stride = stride
        self.padding = padding

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.scale, stride=self.stride, padding=self.padding)


class _BiasLeakyReLU(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        return fused_leaky_relu(x, self.bias)


def _encoder_layer(in_ch: int, out_ch: int, taps: tuple[float, ...], downsample: bool) -> nn.Sequential:
    """``ecdN``: [blur ->] conv (3x3 stride 2, or 1x1) -> biased leaky ReLU, nested as the checkpoints are."""
    if downsample:
        p = len(taps) - 2 + 2  # FIR length - factor + (kernel_size - 1)
        layers: list[nn.Module] = [_Blur(taps, in_ch, ((p + 1) // 2, p // 2)), _EqualConv2d(in_ch, out_ch, 3, 2, 0)]
    else:
        layers = [_EqualConv2d(in_ch, out_ch, 1, 1, 0)]
    return nn.Sequential(nn.Sequential(*layers, _BiasLeakyReLU(out_ch)))


class _ModulatedConv2d(nn.Module):
    """StyleGAN2 modulated convolution: a per-sample style scales the filters' input channels.

    ``weight`` is ``(1, out, in, k, k)`` (the checkpoints' layout); ``modulation`` maps the style vector
    ``(N, style_dim)`` to ``(N, in)`` scales. With ``demodulate`` each sample's output filters are
    renormalised to unit norm. ``upsample`` doubles the resolution with a stride-2 transposed convolution
    followed by a FIR blur.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, style_dim: int, taps: tuple[float, ...],
                 demodulate: bool = True, upsample: bool = False) -> None:
        super().__init__()
        if upsample:  # registered first so the state dict lists keys in the official order
            p = len(taps) - 2 - (kernel_size - 1)
            self.blur = _Blur(taps, out_ch, ((p + 1) // 2 + 1, p // 2 + 1), gain=4.0)
        self.weight = nn.Parameter(torch.randn(1, out_ch, in_ch, kernel_size, kernel_size))
        self.modulation = _EqualLinear(style_dim, in_ch, bias_init=1.0)
        self.scale = 1.0 / math.sqrt(in_ch * kernel_size**2)
        self.demodulate = demodulate
        self.upsample = upsample
        self.kernel_size = kernel_size

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        # Same maths as scaling the weights per sample (the official grouped convolution), done as
        # scale input channels -> shared convolution -> scale output channels: every kernel shape is then
        # a parameter's, so the graph traces to ONNX, and a batch runs as one ordinary convolution.
        s = self.modulation(style)  # (N, in)
        weight = self.weight[0] * self.scale  # (out, in, k, k)
        x = x * s[:, :, None, None]
        if self.upsample:
            out = self.blur(F.conv_transpose2d(x, weight.transpose(0, 1), stride=2))
        else:
            out = F.conv2d(x, weight, padding=self.kernel_size // 2)
        if self.demodulate:
            demod = torch.rsqrt((weight.pow(2).sum(dim=(2, 3))[None] * s.pow(2)[:, None, :]).sum(dim=2) + 1e-8)
            out = out.mul_(demod[:, :, None, None])  # out is this layer's own fresh tensor
        return out


class _FeatureInjection(nn.Module):
    """GPEN's use of StyleGAN2's noise input: ``cat([x, weight * feature])`` (or ``x + weight * feature``)."""

    def __init__(self, isconcat: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.isconcat = isconcat

    def forward(self, x: Tensor, feature: Tensor) -> Tensor:
        if self.isconcat:
            return torch.cat((x, self.weight * feature), dim=1)
        return x + self.weight * feature


class _StyledConv(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, style_dim: int, taps: tuple[float, ...], isconcat: bool,
                 upsample: bool = False) -> None:
        super().__init__()
        self.conv = _ModulatedConv2d(in_ch, out_ch, 3, style_dim, taps, upsample=upsample)
        self.noise = _FeatureInjection(isconcat)
        self.activate = _BiasLeakyReLU(out_ch * (2 if isconcat else 1))

    def forward(self, x: Tensor, style: Tensor, feature: Tensor) -> Tensor:
        return self.activate(self.noise(self.conv(x, style), feature))


class _ToRGB(nn.Module):
    def __init__(self, in_ch: int, style_dim: int, taps: tuple[float, ...], upsample: bool) -> None:
        super().__init__()
        if upsample:  # the official ToRGB is built without the configured kernel: always the default one
            self.upsample = _upsample_2x(_DEFAULT_TAPS, 3)
        self.conv = _ModulatedConv2d(in_ch, 3, 1, style_dim, taps, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: Tensor, style: Tensor, skip: Tensor | None = None) -> Tensor:
        out = self.conv(x, style) + self.bias
        return out if skip is None else out + self.upsample(skip)


class _ConstantInput(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, 4, 4))

    def forward(self, batch: int) -> Tensor:
        return self.input.expand(batch, -1, -1, -1)


class _Synthesis(nn.Module):
    """StyleGAN2 mapping MLP + synthesis network (the checkpoints' ``generator.*``)."""

    def __init__(self, config: GpenConfig) -> None:
        super().__init__()
        ch, taps, sd, cat = config.widths(), config.blur_kernel, config.style_dim, config.isconcat
        mult = 2 if cat else 1
        self.style = nn.Sequential(_PixelNorm(), *(_EqualLinear(sd, sd, lr_mul=config.lr_mlp, activate=True)
                                                   for _ in range(config.n_mlp)))
        self.input = _ConstantInput(ch[4])
        self.conv1 = _StyledConv(ch[4], ch[4], sd, taps, cat)
        self.to_rgb1 = _ToRGB(ch[4] * mult, sd, taps, upsample=False)
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        for i in range(3, config.log_size + 1):
            prev, cur = ch[2 ** (i - 1)], ch[2**i]
            self.convs.append(_StyledConv(prev * mult, cur, sd, taps, cat, upsample=True))
            self.convs.append(_StyledConv(cur * mult, cur, sd, taps, cat))
            self.to_rgbs.append(_ToRGB(cur * mult, sd, taps, upsample=True))

    def forward(self, w: Tensor, features: list[Tensor]) -> Tensor:
        """``w`` ``(N, style_dim)`` (already mapped); ``features`` from 4 px up to ``size``; returns RGB."""
        x = self.conv1(self.input(w.shape[0]), w, features[0])
        rgb = self.to_rgb1(x, w)
        for k, to_rgb in enumerate(self.to_rgbs):
            feature = features[k + 1]
            x = self.convs[2 * k](x, w, feature)
            x = self.convs[2 * k + 1](x, w, feature)
            rgb = to_rgb(x, w, rgb)
        return rgb


class GpenGenerator(nn.Module):
    """GPEN ``FullGenerator``: ``(N, 3, S, S)`` degraded face in ``[-1, 1]`` -> restored face, same shape.

    Built from a :class:`GpenConfig` with freshly initialised weights (as the official module); use
    :func:`load_gpen` to get one with a checkpoint's weights. The state dict (parameters and the constant
    FIR ``*.kernel`` buffers) has the official keys and shapes.
    """

    def __init__(self, config: GpenConfig) -> None:
        super().__init__()
        self.config = config
        ch, taps = config.widths(), config.blur_kernel
        self.generator = _Synthesis(config)
        self.ecd0 = _encoder_layer(3, ch[config.size], taps, downsample=False)
        self._encoder_names = ["ecd0"]
        for k, i in enumerate(range(config.log_size, 2, -1), start=1):
            self.add_module(f"ecd{k}", _encoder_layer(ch[2**i], ch[2 ** (i - 1)], taps, downsample=True))
            self._encoder_names.append(f"ecd{k}")
        self.final_linear = nn.Sequential(_EqualLinear(ch[4] * 16, config.style_dim, activate=True))

    def forward(self, x: Tensor) -> Tensor:
        """``x`` ``(N, 3, S, S)`` in ``[-1, 1]`` (dtype of the parameters) -> ``(N, 3, S, S)``, nominally ``[-1, 1]``."""
        size = self.config.size
        if x.dim() != 4 or x.shape[1] != 3 or x.shape[2] != size or x.shape[3] != size:
            raise ValueError(f"GPEN-{size} expects input (N, 3, {size}, {size}), got {tuple(x.shape)}")
        features = []
        for name in self._encoder_names:
            x = getattr(self, name)(x)
            features.append(x)
        latent = self.final_linear(x.flatten(1))
        w = self.generator.style(latent)
        return self.generator(w, features[::-1])


# ---------------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------------

def infer_config(state_dict: Mapping[str, Tensor]) -> GpenConfig:
    """The :class:`GpenConfig` of a GPEN ``FullGenerator`` state dict, from its tensor shapes alone.

    ``size`` comes from the number of encoder stages, ``style_dim`` and ``n_mlp`` from the mapping MLP,
    ``isconcat`` from the activation widths, the FIR kernel from a stored ``*.kernel`` buffer, and
    ``narrow`` / ``channel_multiplier`` from the widths at 4 px and 64 px (``channel_multiplier`` cannot be
    told below 64 px and is then reported as 2, the official default). Raises ``ValueError`` when the
    keys are not GPEN's. Wrappers and ``module.`` prefixes are taken off first, as in :func:`load_gpen`.
    """
    state_dict = _unwrap(state_dict)
    required = ("final_linear.0.weight", "generator.input.input", "ecd0.0.0.weight",
                "generator.conv1.conv.weight", "generator.conv1.activate.bias")
    missing = [k for k in required if k not in state_dict]
    if missing:
        raise ValueError(f"not a GPEN FullGenerator state dict: no {missing[0]!r} "
                         f"({len(state_dict)} keys, e.g. {next(iter(state_dict), None)!r})")

    def indices(pattern: str) -> list[int]:
        found = sorted({int(m.group(1)) for k in state_dict if (m := re.fullmatch(pattern, k))})
        if found and found != list(range(found[0], found[0] + len(found))):
            raise ValueError(f"not a GPEN FullGenerator state dict: gaps in the indices of {pattern!r}: {found}")
        return found

    n_mlp = len(indices(r"generator\.style\.(\d+)\.weight"))
    log_size = len(indices(r"ecd(\d+)\..*")) + 1
    size = 2**log_size
    style_dim = int(state_dict["final_linear.0.weight"].shape[0])
    widths = [int(state_dict["generator.input.input"].shape[1])]
    for k in range(log_size - 2):
        key = f"generator.convs.{2 * k}.conv.weight"
        if key not in state_dict:
            raise ValueError(f"not a GPEN FullGenerator state dict: {log_size - 1} encoder stages "
                             f"(size {size}) but no {key!r}")
        widths.append(int(state_dict[key].shape[1]))
    isconcat = int(state_dict["generator.conv1.activate.bias"].shape[0]) == 2 * widths[0]

    taps: tuple[float, ...] = _DEFAULT_TAPS
    fir_key = next((k for k in state_dict if k.endswith(".kernel") and ".to_rgbs." not in k), None)
    if fir_key is not None and state_dict[fir_key].dim() == 2 and bool(state_dict[fir_key].ne(0).any()):
        row = state_dict[fir_key].detach().float().cpu().sum(dim=1)  # outer(k, k) / sum -> k / sum(k)
        row = row / row.abs()[row != 0].min()
        taps = tuple(round(float(v), 6) for v in row)

    narrow, multiplier, explicit = _width_parameters(widths)
    return GpenConfig(size=size, style_dim=style_dim, n_mlp=n_mlp, channel_multiplier=multiplier, narrow=narrow,
                      isconcat=isconcat, blur_kernel=taps, channels=explicit)


def _width_parameters(widths: list[int]) -> tuple[float, float, tuple[int, ...] | None]:
    """``(narrow, channel_multiplier, explicit widths or None)`` reproducing ``widths`` (4 px upwards).

    Widths are truncated products, so several values fit; the plainest one wins (0.3 rather than
    0.298828125, 1/64 rather than 0.016). ``channel_multiplier`` only shows from 64 px on; below that it
    is reported as the official default, 2.
    """
    exact = widths[0] / 512
    candidates = {exact, *(round(exact, d) for d in range(1, 5))}
    narrows = sorted((n for n in candidates if int(512 * n) == widths[0]), key=lambda n: (_plainness(n), n != exact))
    if len(widths) < 5:
        return narrows[0], 2, None
    for narrow in narrows:
        estimate = widths[4] / (256 * narrow)
        for multiplier in dict.fromkeys([*(round(estimate, d) for d in range(5)), estimate]):
            multiplier = int(multiplier) if float(multiplier).is_integer() else multiplier
            if [_table_width(2**i, multiplier, narrow) for i in range(2, len(widths) + 2)] == widths:
                return narrow, multiplier, None
    return exact, widths[4] / (256 * exact), tuple(widths)


def _plainness(value: float) -> int:
    """Significant digits of ``value`` written in decimal or, if shorter, in binary."""
    decimal_digits = len(Decimal(repr(value)).normalize().as_tuple().digits)
    numerator, denominator = value.as_integer_ratio()
    binary_digits = numerator.bit_length() if denominator & (denominator - 1) == 0 else decimal_digits
    return min(decimal_digits, binary_digits)


def load_gpen(source: str | PathLike[str] | Mapping[str, object], map_location: str | torch.device = "cpu") -> GpenGenerator:
    """A :class:`GpenGenerator` in eval mode with the weights of ``source``, on ``map_location``.

    ``source`` is a ``.pth``/``.pt`` file (read with ``weights_only=True``) or an already loaded mapping:
    a flat state dict or one wrapped in ``params_ema`` / ``g_ema`` / ``state_dict`` / ``params`` /
    ``model``, with or without ``module.`` prefixes. Loading is strict (every key and shape). Raises
    ``ValueError`` naming the file and the problem when it is not a GPEN ``FullGenerator``.
    """
    if isinstance(source, (str, PathLike)):
        name = str(source)
        try:
            raw = torch.load(Path(source), map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise
        except pickle.UnpicklingError as exc:
            if "global" in str(exc).lower():
                raise ValueError(f"{name}: holds Python objects besides tensors (a whole pickled module?), which "
                                 "are not loaded for safety; save the module's state_dict() instead") from exc
            raise ValueError(f"{name}: cannot read as a torch checkpoint (not a PyTorch file, or damaged)") from exc
        except Exception as exc:  # a truncated or foreign file: errors of many types
            reason = " ".join(str(exc).split())[:160]
            raise ValueError(f"{name}: cannot read as a torch checkpoint ({type(exc).__name__}: {reason})") from exc
    else:
        name, raw = "<state dict>", source
    try:
        state_dict = _unwrap(raw)
        config = infer_config(state_dict)
        model = GpenGenerator(config)
        _check_matches(model, state_dict)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None
    model.load_state_dict(state_dict, strict=True)
    return model.to(map_location).eval().requires_grad_(False)


def _unwrap(raw: object) -> dict[str, Tensor]:
    """The flat ``name -> tensor`` dict inside ``raw``: known wrapper keys and ``module.`` prefixes removed."""
    for _ in range(3):
        if isinstance(raw, Mapping):
            inner = [k for k in _WRAPPER_KEYS if isinstance(raw.get(k), Mapping)]
            if inner and not any(isinstance(v, Tensor) for v in raw.values()):
                raw = raw[inner[0]]
    if not isinstance(raw, Mapping) or not raw:
        got = "an empty mapping" if isinstance(raw, Mapping) else f"a {type(raw).__name__}"
        raise ValueError(f"expected a state dict (a mapping of names to tensors), got {got}")
    out: dict[str, Tensor] = {}
    for key, value in raw.items():
        if not isinstance(value, Tensor):
            # ValueError like every other "this file is not a GPEN" problem, so callers catch one type
            raise ValueError(f"not a state dict: entry {key!r} is a {type(value).__name__}, not a tensor")  # noqa: TRY004
        name = str(key)
        for prefix in _PREFIXES:
            while name.startswith(prefix):
                name = name[len(prefix):]
        out[name] = value
    return out


def _check_matches(model: nn.Module, state_dict: Mapping[str, Tensor]) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s), e.g. {missing[0]!r}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s), e.g. {unexpected[0]!r}")
        raise ValueError(f"not a GPEN FullGenerator state dict: {'; '.join(parts)}")
    for key, tensor in expected.items():
        if tuple(state_dict[key].shape) != tuple(tensor.shape):
            raise ValueError(f"shape mismatch for {key!r}: checkpoint {tuple(state_dict[key].shape)}, "
                             f"GPEN-{model.config.size} expects {tuple(tensor.shape)}")
