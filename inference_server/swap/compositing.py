"""The compositing stage of the classical swap: artist controls applied to a cached model output.

:func:`composite_face_crop` turns a :class:`~.model.SwapModelOutput` and the plate's linear crop into
the face and the blend mask the framework composites as ``plate + mask * (face - plate)``. It does no
landmark fitting and no warping: colour match (in linear light), the mask's edge (feather,
erode/dilate), per-region weights, grain retention and blend strength, all vectorised, so moving a
slider re-composites from the cache in milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import cv2
import numpy as np

from . import colour
from ..faces.geometry import face_size
from .model import FLAG_SHADING, FLAG_SOURCE_SKIN, FLAG_TARGET_SKIN, SwapModelOutput
from .regions import REGION_NAMES, refined_region_weight_map, region_weight_map

COLOUR_MATCH_MODES = ("none", "mean-std", "histogram")
_MASK_FLOOR = 1e-4       # mask values below this are 0 (the plate stays bit-exact there)
_MAX_EDGE_SHIFT = 0.5    # |erode| limit, x face size
_MAX_FEATHER = 1.0       # feather limit, x face size
_GRAIN_SIGMA = 0.006     # high-pass scale of grain retention, x face size (>= 0.8 px)


@dataclass(frozen=True)
class CompositeControls:
    """Artist controls applied at composite time (never part of the model-output cache key).

    Attributes:
        blend: overall strength 0..1.
        regions: ``(name, weight)`` pairs, weights 0..1, names from :data:`REGION_NAMES`; missing
            names weigh 1.
        feather: extra softening of the mask edge, x face size (0 = the model's own edge).
        erode: > 0 shrinks, < 0 grows the mask, x face size; never beyond the model's allowed zone.
        grain: 0..1, how much of the plate's own fine detail (film grain, skin texture) replaces the
            swapped face's.
        colour_match: ``none`` | ``mean-std`` | ``histogram``, all in linear light.
    """

    blend: float = 1.0
    regions: tuple[tuple[str, float], ...] = ()
    feather: float = 0.0
    erode: float = 0.0
    grain: float = 0.0
    colour_match: str = "mean-std"

    def validated(self) -> "CompositeControls":
        """A normalised copy (plain floats, regions in :data:`REGION_NAMES` order); ValueError with a
        one-line message for a bad name or value."""

        def number(name: str, value: object, lo: float, hi: float) -> float:
            try:
                v = float(value)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise ValueError(f"{name} must be a number, got {value!r}") from None
            if not math.isfinite(v) or not lo <= v <= hi:
                raise ValueError(f"{name} must be in [{lo:g}, {hi:g}], got {value!r}")
            return v

        blend = number("blend", self.blend, 0.0, 1.0)
        feather = number("feather", self.feather, 0.0, _MAX_FEATHER)
        erode = number("erode", self.erode, -_MAX_EDGE_SHIFT, _MAX_EDGE_SHIFT)
        grain = number("grain", self.grain, 0.0, 1.0)
        if self.colour_match not in COLOUR_MATCH_MODES:
            raise ValueError(f"colour_match must be one of {', '.join(COLOUR_MATCH_MODES)}, got {self.colour_match!r}")
        seen: dict[str, float] = {}
        try:
            pairs = [tuple(p) for p in self.regions]
        except TypeError:
            raise ValueError(f"regions must be (name, weight) pairs, got {self.regions!r}") from None
        for pair in pairs:
            if len(pair) != 2:
                raise ValueError(f"regions must be (name, weight) pairs, got {pair!r}")
            name, weight = pair
            if name not in REGION_NAMES:
                raise ValueError(f"unknown region {name!r}; regions are {', '.join(REGION_NAMES)}")
            if name in seen:
                raise ValueError(f"region {name!r} given twice")
            seen[name] = number(f"region {name}", weight, 0.0, 1.0)
        regions = tuple((n, seen[n]) for n in REGION_NAMES if n in seen)
        return replace(self, blend=blend, feather=feather, erode=erode, grain=grain, regions=regions)

    def region_weights(self) -> dict[str, float]:
        """Weight of every region (1.0 for the ones not given)."""
        given = dict(self.regions)
        return {n: float(given.get(n, 1.0)) for n in REGION_NAMES}


def parse_regions(text: str) -> tuple[tuple[str, float], ...]:
    """``"mouth=0,eyes=0.5"`` -> ``(("eyes", 0.5), ("mouth", 0.0))`` (validated, canonical order)."""
    pairs: list[tuple[str, float]] = []
    for item in (t.strip() for t in text.replace(";", ",").split(",")):
        if not item:
            continue
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"region weight must be name=value, got {item!r}")
        try:
            weight = float(value)
        except ValueError:
            raise ValueError(f"region {name.strip()!r}: weight must be a number, got {value.strip()!r}") from None
        pairs.append((name.strip(), weight))
    return CompositeControls(regions=tuple(pairs)).validated().regions


# --------------------------------------------------------------------------------------------------
# helpers

def _srgb_lut() -> np.ndarray:
    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    vals = np.nan_to_num(bits.view(np.float16).astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    return colour.srgb_to_linear(vals)


_SRGB_DECODE_F16 = _srgb_lut()  # sRGB EOTF of every float16 value (exactly srgb_to_linear of its float32)


def decode_model_space(encoded_f16: np.ndarray) -> np.ndarray:
    """float16 sRGB-encoded model-space pixels -> linear Rec.709 float32 (a table lookup)."""
    return _SRGB_DECODE_F16[np.ascontiguousarray(encoded_f16, np.float16).view(np.uint16)]


def _ramp(distance: np.ndarray, width: float) -> np.ndarray:
    """Smoothstep of the inside distance over ``width`` px: exactly 0 on and outside the edge."""
    if width <= 0.5:
        return (distance > 0).astype(np.float32)
    t = np.clip((distance - 0.5) * np.float32(1.0 / width), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _edge_correction(face: np.ndarray, tgt: np.ndarray, distance: np.ndarray, ring_width: float,
                     reach: float, max_log_ratio: float = 1.0) -> np.ndarray:
    """Match ``face`` to ``tgt`` on the band just inside the mask edge and fade the correction out
    ``reach`` px inside: the low-frequency part of a gradient-domain blend.

    The per-channel log ratio target/face is sampled on the edge band (``ring_width`` px wide, from the
    signed edge ``distance``), clipped to ``+-max_log_ratio`` so hair or background cannot stain the
    face, spread smoothly by normalised convolution (a Gaussian of half the ring width) and applied
    with a weight of 1 at the edge and 0 deep inside. The spreading is smooth, so it runs on a grid
    coarsened to about a third of that Gaussian."""
    ring = ((distance > 0) & (distance - 0.5 < ring_width)).astype(np.float32)
    if ring.sum() < 4:
        return face
    h, w = ring.shape
    sigma = max(1.0, 0.5 * ring_width)
    f = int(np.clip(sigma / 3.0, 1, 16))
    eps = np.float32(1e-3)
    fall = 1.0 - _ramp(distance, reach)
    if f > 1:
        size = (max(1, -(-w // f)), max(1, -(-h // f)))
        ring = cv2.resize(ring, size, interpolation=cv2.INTER_AREA)
        fall = cv2.resize(fall, size, interpolation=cv2.INTER_AREA)
        face_c = cv2.resize(face, size, interpolation=cv2.INTER_AREA)
        tgt_c = cv2.resize(tgt, size, interpolation=cv2.INTER_AREA)
    else:
        face_c, tgt_c = face, tgt
    d = cv2.log(np.maximum(tgt_c, 0.0) + eps) - cv2.log(np.maximum(face_c, 0.0) + eps)
    np.clip(d, -max_log_ratio, max_log_ratio, out=d)
    both = np.concatenate([d * ring[..., None], ring[..., None]], axis=2)
    both = cv2.GaussianBlur(both, (0, 0), sigma / f, borderType=cv2.BORDER_REPLICATE)
    den = both[..., 3]
    weight = np.clip(den * 20.0, 0.0, 1.0) * fall / np.maximum(den, 1e-4)
    gain = cv2.exp(np.ascontiguousarray(both[..., :3] * weight[..., None]))
    if f > 1:
        gain = cv2.resize(gain, (w, h), interpolation=cv2.INTER_LINEAR)
    return face * gain


def _high_pass(img: np.ndarray, sigma: float) -> np.ndarray:
    return img - cv2.GaussianBlur(img, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


# --------------------------------------------------------------------------------------------------

def colour_stage_key(controls: CompositeControls) -> tuple[str, float, float]:
    """The controls that :func:`matched_face` depends on (blend, region weights and grain are not)."""
    c = controls.validated()
    return (c.colour_match, c.feather, c.erode)


def _eroded_distance(model_out: SwapModelOutput, erode: float, size: float) -> np.ndarray:
    distance = model_out.edge_distance.astype(np.float32)
    if erode != 0.0:
        distance = np.minimum(distance - np.float32(erode * size), model_out.allowed_distance.astype(np.float32))
    return distance


def matched_face(target_linear: np.ndarray, target_landmarks: np.ndarray, model_out: SwapModelOutput,
                 controls: CompositeControls = CompositeControls(),
                 from_model: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """The swapped face of the work box in the plate's linear light, colour-matched to the target.

    Depends on the controls only through :func:`colour_stage_key` (colour match, feather and erode move
    the edge correction), so a caller may keep it while the blend, region weights or grain change.

    Args: as :func:`composite_face_crop`.
    Returns:
        (bh, bw, 3) float32 linear face over ``model_out.box``, before grain and masking.
    """
    c = controls.validated()
    tl = np.asarray(target_linear, np.float32)
    y0, x0, y1, x1 = (int(v) for v in model_out.box)
    tgt = tl[y0:y1, x0:x1]
    T = np.asarray(target_landmarks, np.float64).reshape(68, 2)
    size = face_size(T)
    _, feather_px, edge_px, degree = (float(v) for v in model_out.settings)
    if from_model is None:
        face = decode_model_space(model_out.source)
    else:
        face = np.asarray(from_model(model_out.source.astype(np.float32)), np.float32)
    if c.colour_match == "none":
        return face
    flags = model_out.flags
    src_w = (flags & FLAG_SOURCE_SKIN) > 0
    tgt_w = (flags & FLAG_TARGET_SKIN) > 0
    if c.colour_match == "mean-std":
        face = colour.match_statistics(face, tgt, src_w, tgt_w)
    else:
        face = colour.match_histograms(face, tgt, src_w, tgt_w)
    if degree > 0:
        centre = (float(T[:, 0].mean()) - x0, float(T[:, 1].mean()) - y0)
        ratio = colour.shading_field(face, tgt, ((flags & FLAG_SHADING) > 0).astype(np.float32),
                                     centre, size, int(degree), stride=3)
        face *= ratio[..., None]
    if edge_px > 0:
        width = feather_px + c.feather * size
        face = _edge_correction(face, tgt, _eroded_distance(model_out, c.erode, size), width,
                                edge_px + c.feather * size)
    return colour.fit_gamut(face)


def composite_face_crop(target_linear: np.ndarray, target_landmarks: np.ndarray, model_out: SwapModelOutput,
                        controls: CompositeControls = CompositeControls(),
                        from_model: Callable[[np.ndarray], np.ndarray] | None = None,
                        matched: Callable[[], np.ndarray] | None = None,
                        parsed: Mapping[str, np.ndarray] | None = None,
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Composite stage: the swapped face and its blend mask for one face crop.

    Args:
        target_linear: (h, w, 3) float32 linear crop of the plate (finite, exposure-normalised by the
            caller; values may exceed 1), the crop ``model_out`` was computed for.
        target_landmarks: (68, 2) the face's landmarks in crop pixels.
        model_out: the cached model stage of this face.
        controls: the artist controls.
        from_model: converts the model-space source (float32 (n, m, 3), sRGB-encoded [0, 1]) to the
            plate's linear space; default the sRGB EOTF (linear Rec.709 plates), done by table lookup.
        matched: returns :func:`matched_face` for these arguments (a caller's memo); computed here when
            absent. Called only when some of the face shows.
        parsed: a face parser's soft (h, w) masks of eyes, brows, nose, mouth on the crop; they refine
            the landmark region masks (:func:`~.regions.refined_region_weight_map`).
    Returns:
        ``(face_linear, mask)``: (h, w, 3) float32 linear face (equal to ``target_linear`` where the
        mask is 0) and (h, w) float32 mask in [0, 1], already multiplied by the blend strength and the
        region weights. The mask is exactly 0 wherever the model's coverage is 0 or a region of weight 0
        applies fully. Deterministic.
    """
    c = controls.validated()
    tl = checked_target(target_linear, model_out.crop_hw)
    if model_out.is_empty or c.blend == 0.0:
        return unchanged(tl)

    y0, x0, y1, x1 = (int(v) for v in model_out.box)
    win = (slice(y0, y1), slice(x0, x1))
    T = np.asarray(target_landmarks, np.float64).reshape(68, 2)
    size = face_size(T)
    feather_px = float(model_out.settings[1])

    # mask: the model's edge, moved and softened, times occlusion / mouth interior, region weights, blend
    mask = _ramp(_eroded_distance(model_out, c.erode, size), feather_px + c.feather * size)
    mask *= model_out.keep.astype(np.float32)
    mask = controlled_mask(mask, c, T - np.array([x0, y0]), size,
                           {k: v[win] for k, v in parsed.items()} if parsed else None)
    if not (mask > 0).any():
        return unchanged(tl)
    face = matched() if matched is not None else matched_face(tl, T, model_out, c, from_model)
    return assemble(tl, (y0, x0, y1, x1), face, mask, c, size)


def checked_target(target_linear: np.ndarray, crop_hw: np.ndarray) -> np.ndarray:
    """``target_linear`` as float32, checked to be the (h, w, 3) crop a model output was computed for."""
    tl = np.asarray(target_linear, np.float32)
    h, w = (int(v) for v in crop_hw)
    if tl.shape != (h, w, 3):
        raise ValueError(f"target_linear is {tl.shape}, the model output is for a {h}x{w}x3 crop")
    return tl


def unchanged(target_linear: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(face, mask)`` of a crop left as it is: a copy of the target and an all-zero mask."""
    tl = np.asarray(target_linear, np.float32)
    return np.array(tl, np.float32, copy=True, order="C"), np.zeros(tl.shape[:2], np.float32)


def controlled_mask(mask: np.ndarray, controls: CompositeControls, landmarks: np.ndarray, size: float,
                    parsed: Mapping[str, np.ndarray] | None) -> np.ndarray:
    """A model's (bh, bw) float32 mask over its work box with the artist's region weights and blend.

    Values below a floor become exactly 0 (the plate stays bit-exact there). ``landmarks`` are in work-box
    pixels; ``parsed`` holds a face parser's soft masks over the same box (or None).
    """
    c = controls
    mask = mask * (mask > _MASK_FLOOR)
    weights = c.region_weights()
    if any(v != 1.0 for v in weights.values()):
        mask *= (refined_region_weight_map(mask.shape, landmarks, size, weights, parsed)
                 if parsed else region_weight_map(mask.shape, landmarks, size, weights))
    if c.blend != 1.0:
        mask *= np.float32(c.blend)
    return mask.astype(np.float32, copy=False)


def assemble(target_linear: np.ndarray, box: tuple[int, int, int, int], face: np.ndarray, mask: np.ndarray,
             controls: CompositeControls, size: float) -> tuple[np.ndarray, np.ndarray]:
    """The full-crop ``(face, mask)``: ``face`` (bh, bw, 3) linear over ``box`` (y0, x0, y1, x1), with the
    plate's grain put back per the controls, wherever ``mask`` is live, the target everywhere else."""
    y0, x0, y1, x1 = box
    tl = np.asarray(target_linear, np.float32)
    tgt = tl[y0:y1, x0:x1]
    if controls.grain > 0.0:
        sigma = max(0.8, _GRAIN_SIGMA * size)
        face = face + np.float32(controls.grain) * (_high_pass(tgt, sigma) - _high_pass(face, sigma))
    region = np.array(tgt, np.float32, copy=True, order="C")  # (tgt may be a read-only view)
    cv2.copyTo(np.ascontiguousarray(face, dtype=np.float32), (mask > 0).view(np.uint8), region)
    face_full = np.array(tl, np.float32, copy=True, order="C")
    mask_full = np.zeros(tl.shape[:2], np.float32)
    face_full[y0:y1, x0:x1] = region
    mask_full[y0:y1, x0:x1] = mask
    return face_full, mask_full
