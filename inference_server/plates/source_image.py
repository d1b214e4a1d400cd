"""Source photos as the face models see them: display-referred 8-bit RGB, whatever file they came in."""

from __future__ import annotations

import numpy as np

from .colour import srgb_encode, to_uint8
from .errors import PlateError
from .image_file import Plate

LINEAR_FORMATS = ("openexr", "hdr", "rla")
"""Formats whose pixels are scene-linear (encoded with the sRGB curve before use); the rest are taken
as display-referred already."""


def source_rgb8(plate: Plate) -> np.ndarray:
    """Display-referred ``(H, W, 3)`` uint8 view of a source photo (grey replicated, EXR treated as linear).

    Raises:
        PlateError: the image has neither R, G, B channels nor one or two (grey) channels.
    """
    names = plate.channel_names
    if all(c in names for c in "RGB"):
        rgb = plate.pixels[..., plate.channel_index(("R", "G", "B"))]
    elif plate.pixels.shape[2] in (1, 2):
        rgb = np.repeat(plate.pixels[..., :1], 3, axis=2)
    else:
        raise PlateError("channels", f"no R,G,B channels (has {','.join(names)})")
    if plate.format_name.lower() in LINEAR_FORMATS:
        rgb = srgb_encode(rgb)
    return np.ascontiguousarray(to_uint8(rgb))
