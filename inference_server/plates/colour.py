"""Colour conversions between a plate's scene-linear space and the display-referred space of the models.

Convention:
    - Plate pixels: scene-linear float32 ``(h, w, 3)`` RGB in the plate's colourspace (values above 1,
      negative values, NaN and Inf may occur).
    - Model space: sRGB-encoded Rec.709, float32 ``(h, w, 3)`` in [0, 1].
    - Only face crops travel the full round trip; whole frames are converted only for analysis proxies.

The default plate space is linear Rec.709 (the sRGB primaries), handled by the exact sRGB transfer
functions below. Any other colourspace goes through OpenColorIO via OpenImageIO's colour configuration
(``$OCIO`` when set, else OCIO's built-in config).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import OpenImageIO as oiio

from facebridge.srgb import clip_unit, linear_to_srgb8, srgb_decode, srgb_encode, to_uint8

from .errors import PlateError

LINEAR_REC709 = "lin_rec709"
MODEL_SPACE = "srgb_rec709_scene"




@lru_cache(maxsize=64)
def _is_linear_rec709(name: str) -> bool:
    """Whether the OCIO config knows ``name`` and it equals linear Rec.709 (PlateError when unknown).

    Memoised: building the config takes tens of milliseconds, and it is fixed for the process ($OCIO is
    read once). Failures are not memoised.
    """
    config = oiio.ColorConfig()
    if config.getColorSpaceIndex(name) < 0 and not config.getColorSpaceNameByRole(name):
        raise PlateError("colorspace", f"unknown colourspace '{name}' in OCIO config '{config.configname()}'")
    return bool(config.equivalent(name, LINEAR_REC709))


@dataclass(frozen=True)
class ColourSpace:
    """A plate colourspace and the conversions to and from the model space.

    Build with ``ColourSpace.named(...)``, which checks the name against the OCIO config.

    Args:
        name: colourspace name as the OCIO config knows it (aliases such as ``ACEScg``,
            ``lin_rec709`` accepted).
        is_linear_rec709: whether it equals linear Rec.709, for which the exact sRGB curves are used.
    """

    name: str = LINEAR_REC709
    is_linear_rec709: bool = True

    @classmethod
    def named(cls, name: str) -> "ColourSpace":
        """Look ``name`` up in the OCIO config; PlateError(``colorspace``) when it is unknown."""
        return cls(name, _is_linear_rec709(name))

    def _convert(self, rgb: np.ndarray, src: str, dst: str) -> np.ndarray:
        h, w, _ = rgb.shape
        buf = oiio.ImageBuf(oiio.ImageSpec(w, h, 3, oiio.FLOAT))
        buf.set_pixels(oiio.ROI(0, w, 0, h, 0, 1, 0, 3), np.ascontiguousarray(rgb, dtype=np.float32))
        out = oiio.ImageBufAlgo.colorconvert(buf, src, dst)
        if out.has_error:
            raise PlateError("colorspace", f"cannot convert {src} -> {dst}: {out.geterror()}")
        return np.asarray(out.get_pixels(oiio.FLOAT), dtype=np.float32).reshape(h, w, 3)

    def to_model(self, rgb: np.ndarray) -> np.ndarray:
        """Plate-space linear ``(h, w, 3)`` -> model space [0, 1] float32."""
        if self.is_linear_rec709:
            return srgb_encode(rgb)
        clean = np.nan_to_num(rgb.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
        return np.clip(self._convert(clean, self.name, MODEL_SPACE), 0.0, 1.0)

    def to_proxy8(self, rgb: np.ndarray) -> np.ndarray:
        """Whole-frame display proxy for detection: plate-space ``(H, W, 3)`` -> uint8 sRGB."""
        if self.is_linear_rec709:
            return linear_to_srgb8(rgb)
        return to_uint8(self.to_model(rgb))

    def from_model(self, encoded: np.ndarray) -> np.ndarray:
        """Model space [0, 1] -> plate-space linear ``(h, w, 3)`` float32."""
        if self.is_linear_rec709:
            return srgb_decode(encoded)
        return self._convert(np.clip(encoded, 0.0, 1.0), MODEL_SPACE, self.name)


def plate_colourspace(override: str, metadata_space: str | None) -> ColourSpace:
    """The plate's colourspace: an explicit override, else the file's ``oiio:ColorSpace``, else linear Rec.709."""
    return ColourSpace.named(override or metadata_space or LINEAR_REC709)


__all__ = ["ColourSpace", "LINEAR_REC709", "MODEL_SPACE", "clip_unit", "linear_to_srgb8", "plate_colourspace", "srgb_decode",
           "srgb_encode", "to_uint8"]
