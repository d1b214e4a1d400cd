"""What the panel shows, as pure numpy: the view transform and the comparison modes.

Convention:
    - Previews arrive as ``(h, w, 3)`` float16 scene-linear R,G,B in the plate's colourspace.
    - Display images are ``(h, w, 3)`` uint8 display-referred R,G,B (sRGB unless an OCIO view says
      otherwise), row-major, C-contiguous (ready for a ``QImage.Format_RGB888``).
    - Exposure is in stops, applied in scene-linear before the view transform.

The default view is the sRGB curve on linear Rec.709, applied through a table indexed by the 65536 half
float bit patterns (exposure folded in), so a preview is one table look-up per value. When ``$OCIO``
names a config, ``OcioView`` maps the plate's colourspace through a display/view of that config with
OpenImageIO (OpenColorIO inside).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from facebridge.srgb import srgb_encode

MODES = ("a", "b", "wipe", "side", "difference")
SIDE_GAP = 4  # px of background between the two images of side by side


@lru_cache(maxsize=8)
def _half_table(exposure: float) -> np.ndarray:
    """uint8 sRGB code for every float16 bit pattern, times ``2 ** exposure`` first. ``(65536,)``."""
    values = np.arange(65536, dtype=np.uint16).view(np.float16).astype(np.float32)
    with np.errstate(invalid="ignore", over="ignore"):  # NaN and Inf patterns: srgb_encode maps them
        table = (srgb_encode(values * np.float32(2.0 ** exposure)) * 255.0 + 0.5).astype(np.uint8)
    table.flags.writeable = False
    return table


def view_srgb(linear: np.ndarray, exposure: float = 0.0) -> np.ndarray:
    """Scene-linear Rec.709 ``(h, w, 3)`` -> sRGB uint8, with ``exposure`` stops.

    float16 input goes through the half table (exact per value); other dtypes are converted to float16
    first (previews travel as half floats anyway).
    """
    half = np.ascontiguousarray(linear, np.float16)
    return _half_table(round(float(exposure), 4))[half.view(np.uint16)]


@dataclass(frozen=True)
class OcioView:
    """A display/view of an OCIO config, applied with OpenImageIO's ``ociodisplay``.

    Args:
        display, view: names in the config (``from_environment`` picks the config's defaults).
        config: the config file (``$OCIO``); empty = OpenImageIO's current config.
    """

    display: str
    view: str
    config: str = ""

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ, display: str = "",
                         view: str = "") -> "OcioView | None":
        """The view of ``$OCIO``'s config (its default display and view unless named), or None without $OCIO."""
        path = environ.get("OCIO", "")
        if not path:
            return None
        import OpenImageIO as oiio

        config = oiio.ColorConfig(path)
        display = display or config.getDefaultDisplayName()
        return cls(display, view or config.getDefaultViewName(display), path)

    def apply(self, linear: np.ndarray, colourspace: str, exposure: float = 0.0) -> np.ndarray:
        """``(h, w, 3)`` scene-linear in ``colourspace`` -> uint8 display values of this view."""
        import OpenImageIO as oiio

        rgb = np.ascontiguousarray(linear, np.float32) * np.float32(2.0 ** exposure)
        h, w, _ = rgb.shape
        buf = oiio.ImageBuf(oiio.ImageSpec(w, h, 3, oiio.FLOAT))
        buf.set_pixels(oiio.ROI(0, w, 0, h, 0, 1, 0, 3), rgb)
        out = oiio.ImageBufAlgo.ociodisplay(buf, self.display, self.view, fromspace=colourspace or "lin_rec709",
                                            colorconfig=self.config)
        if out.has_error:
            raise ValueError(f"OCIO view {self.display}/{self.view}: {out.geterror()}")
        shown = np.asarray(out.get_pixels(oiio.FLOAT), np.float32).reshape(h, w, 3)
        return (np.clip(np.nan_to_num(shown), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def to_display(linear: np.ndarray, exposure: float = 0.0, view: OcioView | None = None,
               colourspace: str = "") -> np.ndarray:
    """The panel's view transform: the OCIO ``view`` when given, else sRGB (see the module docstring)."""
    if view is not None:
        return view.apply(linear, colourspace, exposure)
    return view_srgb(linear, exposure)


def difference(a: np.ndarray, b: np.ndarray, gain: float = 8.0) -> np.ndarray:
    """Amplified absolute difference ``|a - b| * gain`` of two linear images, float32 ``(h, w, 3)``.

    NaN differences count as 0; shown through the sRGB curve (no exposure), so a tiny change lights up.
    """
    if a.shape != b.shape:
        raise ValueError(f"difference of images of shapes {a.shape} and {b.shape}")
    d = np.abs(a.astype(np.float32) - b.astype(np.float32)) * np.float32(gain)
    return np.nan_to_num(d, nan=0.0, posinf=65504.0)


def wipe_column(width: int, position: float) -> int:
    """The first column showing the right-hand image of a wipe at ``position`` (0 = all right, 1 = all left)."""
    return int(round(min(1.0, max(0.0, float(position))) * width))


def wipe(left: np.ndarray, right: np.ndarray, position: float) -> np.ndarray:
    """Columns before ``wipe_column`` from ``left``, the rest from ``right`` (same shape, any dtype)."""
    if left.shape != right.shape:
        raise ValueError(f"wipe of images of shapes {left.shape} and {right.shape}")
    split = wipe_column(left.shape[1], position)
    out = right.copy()
    out[:, :split] = left[:, :split]
    return out


def side_by_side(left: np.ndarray, right: np.ndarray, gap: int = SIDE_GAP, fill: int = 0) -> np.ndarray:
    """``left``, a ``gap`` of ``fill`` and ``right`` next to each other (heights padded at the bottom)."""
    h = max(left.shape[0], right.shape[0])

    def padded(image: np.ndarray) -> np.ndarray:
        if image.shape[0] == h:
            return image
        pad = np.full((h - image.shape[0],) + image.shape[1:], fill, image.dtype)
        return np.concatenate([image, pad], axis=0)

    spacer = np.full((h, gap) + left.shape[2:], fill, left.dtype)
    return np.ascontiguousarray(np.concatenate([padded(left), spacer, padded(right)], axis=1))


def compose(mode: str, a: np.ndarray, b: np.ndarray, position: float = 0.5, gain: float = 8.0,
            exposure: float = 0.0, view: OcioView | None = None, colourspace: str = "",
            flipped: bool = False, transform: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """The displayed image of a view mode (``MODES``) from two linear previews of the same geometry.

    ``flipped`` swaps the roles of ``a`` and ``b`` (the flip key): ``a`` shows B, wipe and side by side
    put B on the left. ``transform`` replaces ``to_display(x, exposure, view, colourspace)`` (a caller
    that remembers the display image of an unchanged preview). Returns uint8 display values.
    """
    if mode not in MODES:
        raise ValueError(f"view mode '{mode}' (modes: {', '.join(MODES)})")
    shown = transform or (lambda x: to_display(x, exposure, view, colourspace))
    first, second = (b, a) if flipped else (a, b)
    if mode == "a":
        return shown(first)
    if mode == "b":
        return shown(second)
    if mode == "difference":
        return view_srgb(difference(first, second, gain))
    shown_first, shown_second = shown(first), shown(second)
    if mode == "wipe":
        return wipe(shown_first, shown_second, position)
    return side_by_side(shown_first, shown_second)


def to_image_points(points: np.ndarray, box: tuple[int, int, int, int], size: tuple[int, int]) -> np.ndarray:
    """Data-window ``(N, 2)`` points -> pixels of a preview of ``box`` = ``(x0, y0, x1, y1)`` at ``size`` = ``(w, h)``
    (pixel-centre convention of the Preview RPC)."""
    x0, y0, x1, y1 = box
    scale = np.array([size[0] / max(1, x1 - x0), size[1] / max(1, y1 - y0)], np.float64)
    return (np.asarray(points, np.float64) - (x0, y0) + 0.5) * scale - 0.5


def region_tint(labels: np.ndarray, size: tuple[int, int], colours: np.ndarray, weights: np.ndarray,
                opacity: float = 0.45) -> np.ndarray:
    """RGBA uint8 ``(h, w, 4)`` overlay of region labels resized (nearest) to ``size`` = ``(w, h)``.

    ``colours``: ``(R, 3)`` uint8 per region; ``weights``: ``(R,)`` in [0, 1], the region's weight: the
    tint's opacity is ``opacity * weight`` (a region switched off shows only its outline colour faintly).
    Label 0 (no face) is transparent.
    """
    w, h = size
    lh, lw = labels.shape
    rows = np.minimum((np.arange(h) + 0.5) * lh / h, lh - 1).astype(np.intp)
    cols = np.minimum((np.arange(w) + 0.5) * lw / w, lw - 1).astype(np.intp)
    grid = labels[rows[:, None], cols[None, :]]
    table = np.zeros((len(colours) + 1, 4), np.uint8)
    table[1:, :3] = colours
    table[1:, 3] = (np.clip(0.15 + 0.85 * np.asarray(weights, np.float32), 0.0, 1.0) * opacity * 255.0).astype(np.uint8)
    return np.ascontiguousarray(table[np.minimum(grid, len(colours))])
