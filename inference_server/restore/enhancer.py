"""The embedded classical face enhancer: noise-adaptive edge-aware denoising plus limited detail enhancement.

It is what ``--mode restore`` runs when no restoration model file is installed. It does not invent
anything: noise is removed in proportion to the noise measured in the crop, and existing detail is
amplified in luminance only, never beyond the local range of the denoised image.

Convention:
    - Images: float32 ``(H, W, 3)`` RGB, display-referred sRGB-encoded (sRGB/Rec.709 primaries with the
      sRGB transfer curve), values in [0, 1]. "Linear" below means the same primaries with the curve
      removed.
    - Landmarks: ``(68, 2)`` float32 ``x, y`` pixel centres in the crop, iBUG 68-point order (jaw 0-16,
      brows 17-26, nose 27-35, eyes 36-47, mouth 48-67).
    - Lengths in :class:`EnhancerSettings` are fractions of the inter-ocular distance (between the two
      eye centres), so the result does not depend on the crop's resolution.

Steps of :func:`enhance_face`:
    1. The noise level is estimated per opponent component (one luma, two chroma; an orthonormal
       transform, so i.i.d. channel noise of sigma has sigma in each component) as a robust MAD of a
       second-derivative high-pass over the flattest pixels of the crop.
    2. Edge-aware denoising with guided filters (box filters in float32). Luma is guided by itself with
       a local Wiener gain (the measured noise variance is taken out of the local variance), so flat
       noise goes to the local mean and structure above the noise stays. Chroma is regressed on the
       denoised luma in a small window; what the luma does not explain (an edge between two colours of
       equal brightness) is put back where it stands out of the chroma noise. Everything scales with the
       measured noise, so a clean crop passes almost unchanged.
    3. Detail enhancement of the denoised base in luminance: a fine and a medium band-pass of the
       sRGB-encoded luminance, cored against the residual noise, weighted by a landmark map (eyes,
       brows and lips full strength, skin and the rest gentler). The new luminance is applied as one
       gain per pixel on linear RGB, so chromaticity in linear light is unchanged, and that gain is
       clamped so that no channel leaves the min/max of its neighbourhood in the base (no halos, no
       ringing, no new highlights).
    4. Optionally a share of the removed noise is added back (``keep_noise``), so the skin keeps its
       grain and the face still sits in a grainy plate.

Every step is a fixed sequence of OpenCV/numpy float operations, so the same input gives the same bits.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields

import cv2
import numpy as np

# bump when the algorithm changes its output for the same inputs and settings (part of cache keys)
ENHANCER_ID = "classical-enhancer-v1"

# Rec.709 / sRGB luminance weights (linear light)
_LUMA = np.array([[0.2126, 0.7152, 0.0722]], np.float32)
# orthonormal opponent transform: rows = luma (R+G+B)/sqrt3, chroma (R-B)/sqrt2, (R-2G+B)/sqrt6
_OPP = np.array([[1 / math.sqrt(3), 1 / math.sqrt(3), 1 / math.sqrt(3)],
                 [1 / math.sqrt(2), 0.0, -1 / math.sqrt(2)],
                 [1 / math.sqrt(6), -2 / math.sqrt(6), 1 / math.sqrt(6)]], np.float32)
_OPP_INV = np.ascontiguousarray(_OPP.T)
# second-derivative high-pass; its response to white noise of sigma has standard deviation sigma
_HIGHPASS = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32) / 6.0
_MAD_TO_SIGMA = 1.4826
_SIGMA_FLOOR = 1e-3  # below this a crop counts as clean (about a quarter of an 8-bit step)
_CHROMA_EPS_K = 1.5  # chroma guided-filter eps = (chroma_denoise * K * chroma sigma)^2
_CHROMA_RADIUS_K = 1.5  # chroma window = K x luma window
_COARSE_K = 3.0  # medium detail band: Gaussian sigma = K x detail_radius
_FEATHER = 0.12  # feature map softness, fraction of the inter-ocular distance
_BORDER = cv2.BORDER_REFLECT


@dataclass(frozen=True)
class EnhancerSettings:
    """Settings of :func:`enhance_face` (the defaults are the tuned embedded settings).

    Lengths are fractions of the inter-ocular distance. All values go into :meth:`key`.

    Attributes:
        denoise: luma denoising strength: multiple of the measured noise variance that the local Wiener
            gain of the guided filter takes out (1 = as measured, 0 = off).
        chroma_denoise: chroma denoising strength: multiple of the measured chroma noise sigma used by
            the chroma filter (regularisation and the residual's Wiener gain); 0 = off.
        denoise_radius: guided-filter window radius for luma (at least 1 px; chroma uses 1.5 x).
        keep_noise: share of the removed noise that is added back at the end (grain retention).
        detail_gain: detail amplification on eyes, brows and lips (0 = no enhancement).
        skin_detail: share of ``detail_gain`` used everywhere else (skin, hair, background).
        detail_radius: Gaussian sigma of the fine detail band; the medium band uses three times as much.
        coarse_detail: weight of the medium band relative to the fine band.
        coring: fine detail below this many residual-noise sigmas is not amplified (noise stays noise).
        halo_radius: radius of the neighbourhood whose min/max per channel bounds the enhanced pixel.
    """

    denoise: float = 1.0
    chroma_denoise: float = 1.0
    denoise_radius: float = 0.01
    keep_noise: float = 0.1
    detail_gain: float = 0.6
    skin_detail: float = 0.35
    detail_radius: float = 0.015
    coarse_detail: float = 0.5
    coring: float = 1.5
    halo_radius: float = 0.02

    def __post_init__(self) -> None:
        for name, (lo, hi, open_lo) in _RANGES.items():
            value = getattr(self, name)
            low = "(" if open_lo else "["
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"EnhancerSettings.{name} must be a number in {low}{lo}, {hi}], got {value!r}")
            number = float(value)
            if not math.isfinite(number) or number > hi or number < lo or (open_lo and number == lo):
                raise ValueError(f"EnhancerSettings.{name} must be in {low}{lo}, {hi}], got {value!r}")

    def key(self) -> str:
        """Stable text of the enhancer id and every setting, for cache keys (1 and 1.0 give the same key)."""
        values = ",".join(f"{f.name}={float(getattr(self, f.name))!r}" for f in fields(self))
        return f"{ENHANCER_ID}({values})"


# name -> (lowest, highest, lowest excluded)
_RANGES: dict[str, tuple[float, float, bool]] = {
    "denoise": (0.0, 4.0, False),
    "chroma_denoise": (0.0, 4.0, False),
    "denoise_radius": (0.0, 0.2, True),
    "keep_noise": (0.0, 1.0, False),
    "detail_gain": (0.0, 3.0, False),
    "skin_detail": (0.0, 1.0, False),
    "detail_radius": (0.0, 0.1, True),
    "coarse_detail": (0.0, 2.0, False),
    "coring": (0.0, 10.0, False),
    "halo_radius": (0.0, 0.1, True),
}


# -- small helpers ---------------------------------------------------------------------------------
def _box(x: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2r+1)^2 window, float32, mirrored border."""
    return cv2.boxFilter(x, -1, (2 * radius + 1, 2 * radius + 1), borderType=_BORDER)


def _gauss(x: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(x, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=_BORDER)


def _decode(encoded: np.ndarray) -> np.ndarray:
    """sRGB-encoded -> linear, float32 (the IEC 61966-2-1 curve; OpenCV's vectorised pow, within 1e-6 of
    :func:`~inference_server.plates.colour.srgb_decode` and several times faster)."""
    x = np.clip(encoded, 0.0, 1.0)
    curve = cv2.pow((x + np.float32(0.055)) * np.float32(1.0 / 1.055), 2.4)
    return np.where(x <= np.float32(0.04045), x * np.float32(1.0 / 12.92), curve)


def _encode(linear: np.ndarray) -> np.ndarray:
    """Linear -> sRGB-encoded, float32; the inverse of :func:`_decode` (round trip within 1e-6)."""
    x = np.clip(linear, 0.0, 1.0)
    curve = cv2.pow(x, 1.0 / 2.4) * np.float32(1.055) - np.float32(0.055)
    return np.where(x <= np.float32(0.0031308), x * np.float32(12.92), curve)


def _channel_min(rgb: np.ndarray) -> np.ndarray:
    return np.minimum(np.minimum(rgb[..., 0], rgb[..., 1]), rgb[..., 2])


def _channel_max(rgb: np.ndarray) -> np.ndarray:
    return np.maximum(np.maximum(rgb[..., 0], rgb[..., 1]), rgb[..., 2])


def _guided(guide: np.ndarray, src: np.ndarray, radius: int, eps: float, noise_var: float = 0.0) -> np.ndarray:
    """Grey-guide guided filter (He, Sun, Tang): per window ``src ~ a * guide + b``, then averaged.

    guide, src: ``(H, W)`` float32, radius in px. eps: regularisation in squared intensity units
    (eps >> local variance -> local mean; eps << local variance -> unchanged). With ``noise_var`` the
    slope is ``max(cov - noise_var, 0) / (var + eps)``: a local Wiener gain when guide is src and eps is
    noise_var (flat noise -> local mean, structure well above the noise -> kept).
    """
    mean_g = _box(guide, radius)
    mean_s = _box(src, radius)
    var_g = np.maximum(_box(guide * guide, radius) - mean_g * mean_g, 0.0)
    cov = _box(guide * src, radius) - mean_g * mean_s
    if noise_var > 0.0:
        cov = np.maximum(cov - np.float32(noise_var), 0.0)
    a = cov / (var_g + np.float32(max(eps, 1e-12)))
    b = mean_s - a * mean_g
    return _box(a, radius) * guide + _box(b, radius)


def _inter_ocular(landmarks68: np.ndarray) -> float:
    return float(np.linalg.norm(landmarks68[42:48].mean(0) - landmarks68[36:42].mean(0)))


def _check_image(rgb: np.ndarray, what: str) -> np.ndarray:
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"{what} must be an (H, W, 3) array, got shape {getattr(rgb, 'shape', None)}")
    if rgb.shape[0] < 8 or rgb.shape[1] < 8:
        raise ValueError(f"{what} must be at least 8 x 8 pixels, got {rgb.shape[1]} x {rgb.shape[0]}")
    x = np.ascontiguousarray(rgb, dtype=np.float32)
    if not np.isfinite(x).all():
        raise ValueError(f"{what} has NaN or infinite values")
    return np.clip(x, 0.0, 1.0)


# -- noise -----------------------------------------------------------------------------------------
def _flat_pixels(rgb: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool: the 40 % of pixels with the least structure, away from the border and from clipping.

    Structure is the gradient magnitude of a sigma-2 blurred luma averaged over 7 x 7 (the blur keeps the
    noise itself from deciding which pixels are picked, which would bias the estimate low).
    """
    luma = cv2.transform(rgb, _OPP[:1]).reshape(rgb.shape[:2])
    smooth = _gauss(luma, 2.0)
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3, borderType=_BORDER)
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3, borderType=_BORDER)
    structure = _box(cv2.magnitude(gx, gy), 3)
    valid = (_channel_min(rgb) > 0.02) & (_channel_max(rgb) < 0.98)
    valid[:2], valid[-2:], valid[:, :2], valid[:, -2:] = False, False, False, False
    if valid.sum() < 64:
        return valid
    return valid & (structure <= np.percentile(structure[valid], 40.0))


def _plane_sigma(plane: np.ndarray, flat: np.ndarray) -> float:
    if flat.sum() < 64:
        return 0.0
    response = cv2.filter2D(plane, cv2.CV_32F, _HIGHPASS, borderType=_BORDER)
    return float(_MAD_TO_SIGMA * np.median(np.abs(response[flat])))


def _component_sigmas(opp: np.ndarray, flat: np.ndarray) -> tuple[float, float]:
    """Noise sigma of the luma component and RMS of the two chroma components."""
    s = [_plane_sigma(np.ascontiguousarray(opp[..., k]), flat) for k in range(3)]
    return s[0], math.sqrt(0.5 * (s[1] ** 2 + s[2] ** 2))


# -- regions ---------------------------------------------------------------------------------------
def feature_weights(shape_hw: tuple[int, int], landmarks68: np.ndarray) -> np.ndarray:
    """``(H, W)`` float32 in [0, 1]: 1 on eyes (with lids and lashes), brows and lips, 0 elsewhere, feathered.

    Args:
        shape_hw: crop size.
        landmarks68: ``(68, 2)`` iBUG landmarks in crop pixels.
    """
    pts = np.asarray(landmarks68, np.float64)
    iod = max(_inter_ocular(pts), 1.0)
    polys = []
    for idx, grow in ((slice(36, 42), 1.9), (slice(42, 48), 1.9), (slice(48, 60), 1.15)):
        p = pts[idx]
        c = p.mean(0)
        polys.append(c + (p - c) * grow)
    for idx in (slice(17, 22), slice(22, 27)):
        brow = pts[idx]
        up, down = brow - [0.0, 0.1 * iod], brow + [0.0, 0.1 * iod]
        polys.append(np.concatenate([up, down[::-1]]))
    # drawn and feathered where the eyes are about 32 px apart, then resized (cheap, and the same map at
    # any resolution)
    h, w = shape_hw
    scale = min(1.0, 32.0 / iod)
    small = (max(1, round(w * scale)), max(1, round(h * scale)))
    sx, sy = small[0] / w, small[1] / h
    mask: np.ndarray = np.zeros((small[1], small[0]), np.float32)
    shift = 4
    for poly in polys:
        scaled = (poly + 0.5) * [sx, sy] - 0.5
        hull = cv2.convexHull(np.round(scaled * (1 << shift)).astype(np.int32))
        cv2.fillConvexPoly(mask, hull, 1.0, lineType=cv2.LINE_AA, shift=shift)
    mask = _gauss(mask, _FEATHER * iod * scale)
    if small != (w, h):
        mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip(mask, 0.0, 1.0)


# -- the enhancer ----------------------------------------------------------------------------------
def _denoise(rgb: np.ndarray, flat: np.ndarray, iod: float, settings: EnhancerSettings) -> np.ndarray:
    """Denoised sRGB-encoded ``(H, W, 3)`` float32 in [0, 1] (``flat``: pixels for the noise estimate)."""
    opp = cv2.transform(rgb, _OPP)
    sigma_y, sigma_c = _component_sigmas(opp, flat)
    radius = max(1, round(settings.denoise_radius * iod))
    planes = [np.ascontiguousarray(opp[..., k]) for k in range(3)]
    luma = planes[0]
    if settings.denoise > 0.0:
        noise_var = settings.denoise * max(sigma_y, _SIGMA_FLOOR) ** 2
        luma = _guided(planes[0], planes[0], radius, noise_var, noise_var)
    out = [luma]
    c_radius = max(1, round(_CHROMA_RADIUS_K * settings.denoise_radius * iod))
    for chroma in planes[1:]:
        if settings.chroma_denoise > 0.0:
            noise_var = (settings.chroma_denoise * max(sigma_c, _SIGMA_FLOOR)) ** 2
            smooth = _guided(luma, chroma, c_radius, _CHROMA_EPS_K ** 2 * noise_var)
            # chroma structure the luma does not explain (an edge between two colours of the same
            # brightness) is put back where it stands out of the noise: local Wiener gain on the residual
            residual = chroma - smooth
            energy = _box(residual * residual, c_radius)
            keep = np.maximum(energy - np.float32(noise_var), 0.0) / (energy + np.float32(1e-12))
            chroma = smooth + keep * residual
        out.append(chroma)
    base = cv2.transform(cv2.merge(out), _OPP_INV)
    return np.clip(base, 0.0, 1.0)


def _enhance_detail(base: np.ndarray, flat: np.ndarray, weights: np.ndarray, iod: float,
                    settings: EnhancerSettings) -> np.ndarray:
    """Detail-enhanced sRGB-encoded ``(H, W, 3)`` float32 of the denoised ``base`` (luminance only, clamped)."""
    lin = _decode(base)
    y_lin = cv2.transform(lin, _LUMA).reshape(lin.shape[:2])
    y_enc = _encode(y_lin)
    sigma1 = max(settings.detail_radius * iod, 0.5)
    blur1 = _gauss(y_enc, sigma1)
    blur2 = _gauss(blur1, math.sqrt(_COARSE_K ** 2 - 1.0) * sigma1)  # blur1 blurred to K x sigma1 in total
    fine = y_enc - blur1
    residual = _plane_sigma(y_enc, flat)
    threshold = settings.coring * max(residual, _SIGMA_FLOOR)
    if threshold > 0.0:
        f2 = fine * fine
        fine = fine * f2 / (f2 + np.float32(threshold * threshold))
    boost = fine + np.float32(settings.coarse_detail) * (blur1 - blur2)
    gain = np.float32(settings.detail_gain) * (settings.skin_detail + (1.0 - settings.skin_detail) * weights)
    target = _decode(y_enc + gain * boost)
    ratio = target / np.maximum(y_lin, 1e-6)
    # one gain for R, G and B (chromaticity kept), limited so each channel stays inside its neighbourhood
    size = 2 * max(1, round(settings.halo_radius * iod)) + 1
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (size, size))
    low = cv2.erode(lin, kernel, borderType=cv2.BORDER_REPLICATE)
    high = cv2.dilate(lin, kernel, borderType=cv2.BORDER_REPLICATE)
    # channel c allows gains in [low_c / lin_c, high_c / lin_c]; a black channel allows any gain
    black = lin < np.float32(1e-6)
    safe = np.maximum(lin, np.float32(1e-6))
    lowest = np.where(black, np.float32(0.0), low / safe)
    highest = np.where(black, np.float32(np.inf), high / safe)
    ratio = np.minimum(np.maximum(ratio, _channel_max(lowest)), _channel_min(highest))
    return _encode(cv2.multiply(lin, cv2.merge([ratio, ratio, ratio])))


def enhance_face(crop_rgb: np.ndarray, landmarks68: np.ndarray, settings: EnhancerSettings) -> np.ndarray:
    """Denoise and enhance one face crop; pure and deterministic.

    Args:
        crop_rgb: ``(H, W, 3)`` float32 RGB, display-referred sRGB-encoded, [0, 1] (values outside are
            clipped), at least 8 x 8; the face should fill a good part of it.
        landmarks68: ``(68, 2)`` iBUG 68 landmarks ``x, y`` in crop pixels (they set the filter sizes
            through the inter-ocular distance, and where eyes, brows and lips are).
        settings: :class:`EnhancerSettings`.

    Returns:
        ``(H, W, 3)`` float32 sRGB-encoded RGB in [0, 1].

    Raises:
        ValueError: wrong shapes, NaN/Inf values, or landmarks with no distance between the eyes.
    """
    rgb = _check_image(crop_rgb, "crop_rgb")
    pts = np.asarray(landmarks68, np.float32)
    if pts.shape != (68, 2) or not np.isfinite(pts).all():
        raise ValueError(f"landmarks68 must be a finite (68, 2) array, got shape {pts.shape}")
    iod = _inter_ocular(pts)
    if iod < 1.0:
        raise ValueError(f"landmarks68: eye centres are {iod:.2f} px apart (need at least 1 px)")
    flat = _flat_pixels(rgb)
    base = _denoise(rgb, flat, iod, settings)
    out = base
    if settings.detail_gain > 0.0:
        out = _enhance_detail(base, flat, feature_weights(rgb.shape[:2], pts), iod, settings)
    if settings.keep_noise > 0.0:
        out = out + np.float32(settings.keep_noise) * (rgb - base)
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)
