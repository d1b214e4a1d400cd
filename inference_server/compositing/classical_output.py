"""The classical swap's model output: what its slow, deterministic stage computes for one face crop and
caches, and what its compositing (:mod:`.classical`) reads.

All image-sized arrays cover only the *work box*: the bounding box of the zone the swap may ever touch
(see :attr:`SwapModelOutput.box`); outside it the plate always stays as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from .readonly import ReadOnlyArrays

# bits of SwapModelOutput.flags
FLAG_SOURCE_SKIN = 1   # the warped source's own skin (colour statistics of the source)
FLAG_TARGET_SKIN = 2   # the target's skin (colour statistics of the target)
FLAG_SHADING = 4       # skin seen in both faces (lighting-field samples)


@dataclass(frozen=True, eq=False)
class SwapModelOutput(ReadOnlyArrays):
    """Everything the slow, deterministic part of the swap computes for one face crop (cache payload).

    Arrays only; :meth:`to_arrays` / :meth:`from_arrays` convert to and from a flat ``dict[str, ndarray]``.
    Image-sized arrays cover the work box ``box`` of the crop, not the whole crop.

    Attributes:
        crop_hw: (2,) int32, the crop's height and width.
        box: (4,) int32 ``y0, x0, y1, x1`` of the work box inside the crop (empty when y1 <= y0).
        source: (bh, bw, 3) float16, the warped source face in the model space (sRGB-encoded [0, 1]),
            already softened to the target's level of fine detail.
        edge_distance: (bh, bw) float16 signed distance in px to the edge of the swap's hard region
            (the destination face polygon within the allowed zone), positive inside. The model's own
            mask edge is ``smoothstep((d - 0.5) / feather_px)``.
        allowed_distance: (bh, bw) float16 distance in px inside the allowed zone (the target's grown
            face polygon where the warped source has real pixels), 0 outside: a grown mask never
            reaches past it.
        keep: (bh, bw) float16 in [0, 1], the mask's other factors: hair occlusion times (1 - the
            target's open mouth interior).
        mouth_interior: (bh, bw) float16 in [0, 1], the target's open mouth interior kept from the plate
            (zeros when the mouth is closed or the option is off); already part of ``keep``.
        flags: (bh, bw) uint8 bit set of FLAG_SOURCE_SKIN, FLAG_TARGET_SKIN, FLAG_SHADING.
        destination: (68, 2) float32 landmarks of the swapped face (where the source's features landed)
            in crop pixels.
        settings: (4,) float32 ``face_size_px, feather_px, edge_match_px, shading_degree``.
    """

    crop_hw: np.ndarray
    box: np.ndarray
    source: np.ndarray
    edge_distance: np.ndarray
    allowed_distance: np.ndarray
    keep: np.ndarray
    mouth_interior: np.ndarray
    flags: np.ndarray
    destination: np.ndarray
    settings: np.ndarray

    # -- serialisation ------------------------------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        """Flat ``{name: array}`` (the arrays themselves, not copies)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "SwapModelOutput":
        """Inverse of :meth:`to_arrays`; checks names, dtypes and shapes (ValueError)."""
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in arrays]
        if missing:
            raise ValueError(f"swap model output lacks {', '.join(missing)}")
        vals = {n: np.asarray(arrays[n]) for n in names}
        for n, dt in _DTYPES.items():
            if vals[n].dtype != dt:
                raise ValueError(f"swap model output {n}: dtype {vals[n].dtype}, expected {np.dtype(dt)}")
        out = cls(**vals)
        out.check()
        return out

    def check(self) -> None:
        """ValueError when the arrays do not fit together."""
        if self.crop_hw.shape != (2,) or self.box.shape != (4,) or self.settings.shape != (4,):
            raise ValueError("swap model output: bad crop_hw/box/settings shape")
        y0, x0, y1, x1 = (int(v) for v in self.box)
        h, w = (int(v) for v in self.crop_hw)
        if not (0 <= y0 <= y1 <= h and 0 <= x0 <= x1 <= w):
            raise ValueError(f"swap model output: box {self.box.tolist()} outside crop {h}x{w}")
        hw = (y1 - y0, x1 - x0)
        for n in ("edge_distance", "allowed_distance", "keep", "mouth_interior", "flags"):
            if getattr(self, n).shape != hw:
                raise ValueError(f"swap model output {n}: shape {getattr(self, n).shape}, expected {hw}")
        if self.source.shape != hw + (3,):
            raise ValueError(f"swap model output source: shape {self.source.shape}, expected {hw + (3,)}")
        if self.destination.shape != (68, 2):
            raise ValueError("swap model output destination: expected (68, 2)")

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.to_arrays().values())

    @property
    def is_empty(self) -> bool:
        """True when the swap cannot touch any pixel of the crop."""
        return self.source.shape[0] == 0 or self.source.shape[1] == 0

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SwapModelOutput):
            return NotImplemented
        a, b = self.to_arrays(), other.to_arrays()
        return all(a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]) for k in a)


_DTYPES = {
    "crop_hw": np.int32, "box": np.int32, "source": np.float16, "edge_distance": np.float16,
    "allowed_distance": np.float16, "keep": np.float16, "mouth_interior": np.float16,
    "flags": np.uint8, "destination": np.float32, "settings": np.float32,
}
