"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``) read from its file and run with
numpy: the same 128-d identity descriptor as dlib's ``compute_face_descriptor`` on a face chip (within 1e-6: only the
order of float32 sums differs), ~5x faster on the CPU than dlib-bin's own convolutions (built without BLAS), and
with Python's GIL released inside the matrix products.

The file is dlib's serialisation of the network (davisking/dlib ``dlib/dnn/core.h``, ``layers.h``, ``input.h``,
``cuda/tensor.h``): each layer's details, input first, behind its version string (``con_4``, ``affine_``,
``relu_``, ``max_pool_2``, ``avg_pool_2``, ``add_prev_``, ``fc_2``); integers in dlib's format (a control byte:
0x80 negative, low four bits the number of little-endian bytes that follow), floats as integer mantissa and
exponent, tensors as version 2, four dimensions and raw little-endian float32. The wrappers between the layers
(tags, skips, cached outputs) are not read: the layers are found by their version strings in order, each parsed
where it starts and the next looked for after its end, and the sequence must be the network of dlib's
``dnn_face_recognition_ex.cpp``: a 7x7/2 convolution, affine, ReLU and 3x3/2 max-pool, then 14 residual blocks
(convolution 3x3 with stride 1 or 2, affine, ReLU, convolution 3x3, affine, [2x2/2 average pool of the block's
input], add, ReLU) of 32, 64, 128 and 256 filters, a global average and a 256 -> 128 fully connected layer. dlib's
``add_prev`` adds two tensors of different sizes over the larger one (the missing part counts as zero), which the
down-sampling blocks need (a 3x3 convolution output beside a 4x4 pooled input).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import cast

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

CHIP_SIDE = 150
_LAYER_NAMES = (b"input_rgb_image_sized", b"con_4", b"affine_", b"relu_", b"max_pool_2", b"avg_pool_2",
                b"add_prev_", b"fc_2")
# a version string: dlib's int for its length (one byte), then the name
_LAYER_START = re.compile(b"\\x01([\\x04-\\x15])(" + b"|".join(re.escape(n) for n in _LAYER_NAMES) + b")")
_STEM = ("con_4", "affine_", "relu_", "max_pool_2")
_BLOCK = ("con_4", "affine_", "relu_", "con_4", "affine_", "add_prev_", "relu_")
_DOWN_BLOCK = ("con_4", "affine_", "relu_", "con_4", "affine_", "avg_pool_2", "add_prev_", "relu_")
# the pooling the forward pass does (rows, cols, stride y, stride x, padding y, padding x; 0x0 = the whole map)
_MAX_POOL, _BLOCK_POOL, _GLOBAL_POOL = (3, 3, 2, 2, 0, 0), (2, 2, 2, 2, 0, 0), (0, 0, 1, 1, 0, 0)


@dataclass(frozen=True)
class Conv:
    """A convolution: ``weights`` ``(K, C, r, c)`` float32 (cross-correlation, as dlib), ``bias`` ``(K,)``."""

    weights: np.ndarray
    bias: np.ndarray
    stride: int
    pad: int


@dataclass(frozen=True)
class Affine:
    """Per channel ``gamma * x + beta``: each ``(K,)`` float32 (dlib's batch normalisation, frozen)."""

    gamma: np.ndarray
    beta: np.ndarray


@dataclass(frozen=True)
class Block:
    """A residual block: ``relu(affine2(conv2(relu(affine1(conv1(x))))) + skip(x))``, the skip ``x`` itself or,
    when ``down``, its 2x2/2 average."""

    conv1: Conv
    affine1: Affine
    conv2: Conv
    affine2: Affine
    down: bool


@dataclass(frozen=True)
class ResNet:
    """The network's weights: ``mean`` the ``(3,)`` RGB values subtracted from a chip, the stem, the blocks and the
    final ``(256, 128)`` float32 projection."""

    mean: np.ndarray
    stem: tuple[Conv, Affine]
    blocks: tuple[Block, ...]
    projection: np.ndarray


class _Reader:
    """dlib's serialisation read from ``data`` at ``pos`` (see the module docstring)."""

    def __init__(self, data: bytes, pos: int) -> None:
        self.data, self.pos = data, pos

    def integer(self) -> int:
        control = self.data[self.pos]
        size = control & 0x0F
        if control & 0x70 or size > 8:
            raise ValueError(f"not an integer at byte {self.pos}")
        value = int.from_bytes(self.data[self.pos + 1:self.pos + 1 + size], "little")
        self.pos += 1 + size
        return -value if control & 0x80 else value

    def real(self) -> float:
        mantissa, exponent = self.integer(), self.integer()
        if exponent >= 32000:  # dlib's marks of inf, -inf and NaN
            raise ValueError(f"a non-finite value before byte {self.pos}")
        return float(mantissa * 2.0 ** exponent)

    def text(self) -> str:
        size = self.integer()
        value = self.data[self.pos:self.pos + size]
        self.pos += size
        return value.decode("ascii")

    def tensor(self) -> np.ndarray:
        """A tensor's values, flat float32."""
        if self.integer() != 2:
            raise ValueError(f"a tensor of an unknown version before byte {self.pos}")
        count = 1
        for _ in range(4):
            count *= self.integer()
        if self.pos + 4 * count > len(self.data):
            raise ValueError("the file ends inside a tensor")
        values = np.frombuffer(self.data, "<f4", count, self.pos).astype(np.float32)
        self.pos += 4 * count
        return values

    def shape(self) -> tuple[int, ...]:
        """An alias tensor's shape (where a layer's parameters lie in its one tensor)."""
        if self.integer() != 1:
            raise ValueError(f"an alias tensor of an unknown version before byte {self.pos}")
        return tuple(self.integer() for _ in range(4))


def _layer(reader: _Reader, name: str) -> object:
    """The details of layer ``name`` (its version string read already)."""
    if name == "input_rgb_image_sized":
        mean = np.array([reader.real() for _ in range(3)], np.float32)
        if (reader.integer(), reader.integer()) != (CHIP_SIDE, CHIP_SIDE):
            raise ValueError(f"the input is not {CHIP_SIDE}x{CHIP_SIDE}")
        return mean
    if name == "con_4":
        params = reader.tensor()
        filters, rows, cols, stride_y, stride_x, pad_y, pad_x = (reader.integer() for _ in range(7))
        shape, bias_shape = reader.shape(), reader.shape()
        size = int(np.prod(shape))
        if shape[0] != filters or shape[2:] != (rows, cols) or int(np.prod(bias_shape)) != filters \
                or len(params) < size + filters or stride_y != stride_x or pad_y != pad_x:
            raise ValueError(f"a convolution of unexpected shape {shape}")
        return Conv(params[:size].reshape(shape), params[size:size + filters], stride_y, pad_y)
    if name == "affine_":
        params = reader.tensor()
        gamma, beta = (int(np.prod(reader.shape())) for _ in range(2))
        reader.integer()  # mode (convolutional)
        if len(params) != gamma + beta or gamma != beta:
            raise ValueError("an affine layer of unexpected shape")
        return Affine(params[:gamma], params[gamma:])
    if name in ("max_pool_2", "avg_pool_2"):
        return tuple(reader.integer() for _ in range(6))  # rows, cols, strides, paddings
    if name == "fc_2":
        outputs, inputs = reader.integer(), reader.integer()
        params = reader.tensor()
        shape = reader.shape()
        reader.shape()
        if int(np.prod(shape)) != inputs * outputs or len(params) < inputs * outputs:
            raise ValueError("a fully connected layer of unexpected shape")
        return params[:inputs * outputs].reshape(inputs, outputs)
    return None


def read_resnet(data: bytes) -> ResNet:
    """The network of a ``dlib_face_recognition_resnet_model_v1.dat`` file's bytes.

    Raises:
        ValueError: the file is not that network (one line saying what differs).
    """
    layers: list[tuple[str, object]] = []
    end = 0
    for found in _LAYER_START.finditer(data):
        if found.start() < end or found.group(1)[0] != len(found.group(2)):
            continue  # inside the layer before it, or a name with other characters after it
        reader = _Reader(data, found.start())
        name = reader.text()
        layers.append((name, _layer(reader, name)))
        end = reader.pos
    names = tuple(name for name, _ in layers)
    downs = (False,) * 3 + (True,) + (False,) * 3 + (True,) + (False,) * 2 + (True,) + (False,) * 2 + (True,)
    expected = ("input_rgb_image_sized", *_STEM, *(n for d in downs for n in (_DOWN_BLOCK if d else _BLOCK)),
                "avg_pool_2", "fc_2")
    if names != expected:
        raise ValueError(f"not dlib's face-recognition ResNet: {len(names)} layers found, {len(expected)} expected")
    values = [value for _, value in layers]  # (their types follow from the names, checked above)
    pools = [value for name, value in layers if name.endswith("_pool_2")]  # rows, cols, strides, paddings
    if pools != [_MAX_POOL, *[_BLOCK_POOL] * sum(downs), _GLOBAL_POOL]:
        raise ValueError(f"not dlib's face-recognition ResNet: pooling {pools}")
    blocks: list[Block] = []
    at = 5
    for down in downs:
        conv1, affine1, _, conv2, affine2 = values[at:at + 5]
        blocks.append(Block(cast(Conv, conv1), cast(Affine, affine1), cast(Conv, conv2), cast(Affine, affine2), down))
        at += len(_DOWN_BLOCK if down else _BLOCK)
    return ResNet(cast(np.ndarray, values[0]), (cast(Conv, values[1]), cast(Affine, values[2])), tuple(blocks),
                  cast(np.ndarray, values[-1]))


def _conv(x: np.ndarray, conv: Conv) -> np.ndarray:
    """``(C, H, W)`` float32 -> ``(K, H', W')``: dlib's output size ``1 + (H + 2 pad - r) // stride``.

    One matrix product of the windows' values, ``(H' W', C r s)``, by the weights: the windows are gathered one
    kernel tap at a time, each a whole strided plane of every channel, into ``(C, r, s, H', W')`` (whose transposed
    view is that matrix; the product packs its operands whatever their layout, so the same sums in the same order:
    bit for bit the product of the contiguous matrix, in ~40% less time than gathering it window by window)."""
    k, c, r, s = conv.weights.shape
    if conv.pad:
        x = np.pad(x, ((0, 0), (conv.pad, conv.pad), (conv.pad, conv.pad)))
    step = conv.stride
    h, w = (x.shape[1] - r) // step + 1, (x.shape[2] - s) // step + 1
    taps = np.empty((c, r, s, h, w), np.float32)
    for i in range(r):
        for j in range(s):
            taps[:, i, j] = x[:, i:i + step * (h - 1) + 1:step, j:j + step * (w - 1) + 1:step]
    y = taps.reshape(c * r * s, h * w).T @ conv.weights.reshape(k, -1).T
    y += conv.bias
    return np.ascontiguousarray(y.T).reshape(k, h, w)


def _affine(x: np.ndarray, affine: Affine) -> np.ndarray:
    return x * affine.gamma[:, None, None] + affine.beta[:, None, None]


def _pooled(x: np.ndarray, size: int, how: str) -> np.ndarray:
    """``size`` x ``size`` windows with stride 2 and no padding, their maximum or mean."""
    windows = sliding_window_view(x, (size, size), axis=(1, 2))[:, ::2, ::2]
    return windows.max(axis=(3, 4)) if how == "max" else windows.mean(axis=(3, 4), dtype=np.float32)


def _added(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """dlib's ``add_prev``: the sum over the larger of the two shapes, what one lacks counting as zero."""
    if a.shape == b.shape:
        return a + b
    out = np.zeros(tuple(max(p, q) for p, q in zip(a.shape, b.shape)), np.float32)
    out[:a.shape[0], :a.shape[1], :a.shape[2]] += a
    out[:b.shape[0], :b.shape[1], :b.shape[2]] += b
    return out


def descriptor(net: ResNet, chip: np.ndarray) -> np.ndarray:
    """The ``(128,)`` float64 identity descriptor of a face chip: ``(150, 150, 3)`` uint8 RGB, as
    ``dlib.get_face_chip`` cuts it (size 150, padding 0.25)."""
    if chip.shape != (CHIP_SIDE, CHIP_SIDE, 3) or chip.dtype != np.uint8:
        raise ValueError(f"a face chip is ({CHIP_SIDE}, {CHIP_SIDE}, 3) uint8, not {chip.shape} {chip.dtype}")
    x = np.ascontiguousarray(((chip.astype(np.float32) - net.mean) / np.float32(256.0)).transpose(2, 0, 1))
    x = np.maximum(_affine(_conv(x, net.stem[0]), net.stem[1]), 0.0)
    x = _pooled(x, 3, "max")
    for block in net.blocks:
        y = np.maximum(_affine(_conv(x, block.conv1), block.affine1), 0.0)
        y = _affine(_conv(y, block.conv2), block.affine2)
        x = np.maximum(_added(y, _pooled(x, 2, "mean") if block.down else x), 0.0)
    pooled = x.reshape(x.shape[0], -1).mean(axis=1, dtype=np.float32)
    return np.asarray(pooled @ net.projection, np.float64)
