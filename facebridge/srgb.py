"""The sRGB transfer curve (IEC 61966-2-1) between linear Rec.709 and display-encoded values.

Numpy only: the server's colour conversions, the demo and the panel's display share these curves.
Arrays are float32 of any shape unless stated; encoded values are in [0, 1].
"""

from __future__ import annotations

import numpy as np


def clip_unit(values: np.ndarray) -> np.ndarray:
    """``values`` clipped to [0, 1] with NaN -> 0, +inf -> 1, -inf -> 0, as a new array of the same dtype.

    Bit for bit ``np.clip(np.nan_to_num(values, nan=0, posinf=1, neginf=0), 0, 1)`` (the clip sends the
    infinities to the bounds that ``nan_to_num`` would have), in two passes over the data instead of about eight.
    """
    out = np.clip(values, 0.0, 1.0)
    nan = np.isnan(out)
    if nan.any():
        out[nan] = 0.0
    return out


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """Linear [0, 1] -> sRGB-encoded [0, 1] (IEC 61966-2-1 piecewise curve); input clipped to [0, 1], NaN -> 0."""
    x = clip_unit(linear.astype(np.float32, copy=False))
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(x, 1.0 / 2.4) - 0.055).astype(np.float32)


def srgb_decode(encoded: np.ndarray) -> np.ndarray:
    """sRGB-encoded [0, 1] -> linear [0, 1]; the exact inverse of ``srgb_encode`` on [0, 1]."""
    x = np.clip(encoded.astype(np.float32, copy=False), 0.0, 1.0)
    return np.where(x <= 0.04045, x / 12.92, np.power((x + 0.055) / 1.055, 2.4)).astype(np.float32)


def to_uint8(encoded: np.ndarray) -> np.ndarray:
    """Model-space float [0, 1] -> uint8, rounded."""
    return (np.clip(encoded, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


_LUT_STEPS = 65535
_SRGB8_LUT = to_uint8(srgb_encode(np.linspace(0.0, 1.0, _LUT_STEPS + 1, dtype=np.float32)))


def linear_to_srgb8(linear: np.ndarray) -> np.ndarray:
    """Linear Rec.709 -> sRGB-encoded uint8 through a 65536-entry table (analysis proxies of whole frames).

    Agrees with ``to_uint8(srgb_encode(x))`` to within one code value, at a fraction of the cost.
    """
    x = clip_unit(linear)
    x *= _LUT_STEPS
    x += 0.5
    return np.take(_SRGB8_LUT, x.astype(np.uint16))  # the same gather as indexing, ~15% faster here
