"""Colour matching in linear light: a model's face brought to the plate's tone, colour and lighting.

All images are float32 ``(h, w, 3)`` RGB in linear light (the sRGB/Rec.709 primaries with the transfer
function removed; the curves themselves are :mod:`inference_server.plates.colour`'s); weights and fields
are ``(h, w)`` float32.
"""

from __future__ import annotations

import cv2
import numpy as np

# Rec.709 / sRGB luminance weights (linear light).
LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
_EPS = 1e-4


def _cbrt(x: np.ndarray) -> np.ndarray:
    """Cube root of max(x, 0), float32 (OpenCV's vectorised pow; numpy's cbrt is several times slower)."""
    x = np.ascontiguousarray(np.maximum(x, 0.0), dtype=np.float32)
    return cv2.pow(x, 1.0 / 3.0).reshape(x.shape)


_LUMA_ROW = LUMA.reshape(1, 3)


def luminance(lin: np.ndarray) -> np.ndarray:
    """(h, w) float32 relative luminance of linear RGB."""
    if lin.ndim == 3 and lin.dtype == np.float32 and lin.shape[2] == 3 and lin.flags.c_contiguous:
        return cv2.transform(lin, _LUMA_ROW).reshape(lin.shape[:2])
    return (lin @ LUMA).astype(np.float32)


def _times(img: np.ndarray, plane: np.ndarray) -> np.ndarray:
    """(h, w, 3) float32 times a (h, w) plane, per pixel (OpenCV: numpy broadcasting over a 3-long last
    axis is several times slower)."""
    img = np.ascontiguousarray(img, dtype=np.float32)
    p = np.ascontiguousarray(plane, dtype=np.float32)
    return cv2.multiply(img, cv2.merge([p, p, p]))


def _wstats(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean and standard deviation over pixels; x (n, c), w (n,)."""
    ws = float(w.sum()) + 1e-12
    mean = (x * w[:, None]).sum(0) / ws
    var = (((x - mean) ** 2) * w[:, None]).sum(0) / ws
    return mean, np.sqrt(np.maximum(var, 0.0))


def _robust_stats(x: np.ndarray) -> tuple[float, float]:
    """Median and a robust standard deviation (half the 16th-84th percentile range) of samples."""
    if x.size == 0:
        return 0.0, 1.0
    p16, p50, p84 = np.percentile(x, [16.0, 50.0, 84.0])
    return float(p50), float(max(0.5 * (p84 - p16), 1e-6))


def fit_gamut(lin: np.ndarray) -> np.ndarray:
    """Bring linear RGB into [0, 1] by moving out-of-range pixels toward their own luminance (a
    saturation reduction that keeps hue and, where possible, Y) instead of clipping channels one by
    one, which would shift hue (a clipped red channel turns skin highlights cyan)."""
    lin = np.ascontiguousarray(lin, dtype=np.float32)
    inside = cv2.inRange(lin.reshape(lin.shape[0], -1, 3), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    bad = inside.reshape(lin.shape[:-1]) == 0
    out = np.clip(lin, 0.0, 1.0)
    if not bad.any():
        return out
    px = lin[bad]  # only out-of-range pixels move toward their luminance
    y = np.clip(px @ LUMA, 0.0, 1.0)[:, None]
    h_, l_ = px.max(axis=1, keepdims=True), px.min(axis=1, keepdims=True)
    t = np.where(h_ > 1.0, (1.0 - y) / np.maximum(h_ - y, 1e-6), 1.0)
    t = np.minimum(t, np.where(l_ < 0.0, y / np.maximum(y - l_, 1e-6), 1.0))
    out[bad] = np.clip(y + np.clip(t, 0.0, 1.0) * (px - y), 0.0, 1.0)
    return out


def _robust_weights(y: np.ndarray, w: np.ndarray, dark: float) -> np.ndarray:
    """Weights with the darkest pixels (below ``dark`` x the weighted median luminance) dropped: their
    chromaticity is mostly noise (nostrils, lash lines, mouth corners)."""
    sel = w > 0
    if not sel.any():
        return w
    med = float(np.median(y[sel]))
    return np.where(y > dark * med, w, 0.0).astype(np.float32)


def match_statistics(src_lin: np.ndarray, tgt_lin: np.ndarray, src_w: np.ndarray, tgt_w: np.ndarray,
                     max_contrast_ratio: float = 1.5, max_saturation_gain: float = 1.0,
                     dark: float = 0.35) -> np.ndarray:
    """Match the source's tone and colour statistics to the target's, in linear light.

    Luminance Y (Rec.709 weights on linear RGB) is matched as lightness ``Y ** (1/3)``: median
    (exposure) and robust spread (contrast, the ratio clipped to
    ``[1/max_contrast_ratio, max_contrast_ratio]``). Colour is
    handled as chromaticity ``rgb / Y``: its mean is moved to the target's and the spread around it
    scaled by the target/source spread ratio (at most ``max_saturation_gain``), so a black-and-white
    target yields a neutral face and a saturated target a saturated one. Y is preserved exactly.

    Args:
        src_lin, tgt_lin: (h, w, 3) float32 linear RGB on the same grid.
        src_w, tgt_w: (h, w) float32 weights selecting the (skin) pixels whose statistics count.
    Returns:
        (h, w, 3) float32 linear RGB, the source recoloured.
    """
    # statistics from every other pixel in x and y (plenty for medians and spreads, 4x less work)
    sel_s, sel_t = src_w[::2, ::2] > 0, tgt_w[::2, ::2] > 0
    ws, wt = np.asarray(src_w, np.float32)[::2, ::2][sel_s], np.asarray(tgt_w, np.float32)[::2, ::2][sel_t]
    ys = luminance(src_lin)
    # lightness ~ cube root of Y (as in CIELAB / Oklab): a perceptually even scale for tone matching
    ls = _cbrt(ys)
    spx = src_lin[::2, ::2][sel_s]
    tpx = tgt_lin[::2, ::2][sel_t]  # target: only the pixels whose statistics count
    yt = tpx @ LUMA
    ys_s = spx @ LUMA
    mu_s, sd_s = _robust_stats(_cbrt(ys_s))
    mu_t, sd_t = _robust_stats(_cbrt(yt))
    k = float(np.clip(sd_t / max(sd_s, 1e-6), 1.0 / max_contrast_ratio, max_contrast_ratio))
    y_out = np.maximum((ls - np.float32(mu_s)) * np.float32(k) + np.float32(mu_t), 0.0)
    y_out = y_out * y_out * y_out

    rws = _robust_weights(ys_s, ws, dark)
    rwt = _robust_weights(yt, wt, dark)
    cm_s, csd_s = _wstats(spx[rws > 0] / (ys_s[rws > 0, None] + _EPS), rws[rws > 0])
    cm_t, csd_t = _wstats(tpx[rwt > 0] / (yt[rwt > 0, None] + _EPS), rwt[rwt > 0])
    spread_s = float(np.sqrt((csd_s ** 2).sum()))
    spread_t = float(np.sqrt((csd_t ** 2).sum()))
    r = min(spread_t / max(spread_s, 1e-6), max_saturation_gain)
    # chromaticity cs = rgb / Y moved to the target's mean, spread scaled by r: cs * r + (cm_t - cm_s * r)
    c_out = _times(src_lin, np.float32(r) / (ys + np.float32(_EPS)))
    off = cm_t - cm_s * r
    c_out = cv2.add(c_out, (float(off[0]), float(off[1]), float(off[2]), 0.0))  # type: ignore[call-overload, unused-ignore]  # a per-channel scalar, which OpenCV takes and its stubs before 5.1 lack
    np.maximum(c_out, 0.0, out=c_out)
    return _times(c_out, y_out / np.maximum(luminance(c_out), np.float32(1e-6)))


def shading_field(src_lin: np.ndarray, tgt_lin: np.ndarray, weight: np.ndarray, centre: tuple[float, float],
                  scale: float, degree: int = 2, max_ratio: float = 2.0, stride: int = 2) -> np.ndarray:
    """Smooth multiplicative lighting correction: a low-order polynomial in x, y fitted (robustly) to
    log(Y_target / Y_source) over the pixels where ``weight`` > 0 (skin seen in both faces) and the log is
    defined (a pixel whose luminance is at or below -1e-3, NaN or infinite is left out).

    A polynomial, unlike a blurred ratio, does not pick up hair, brows or background that happen to
    lie under the mask, and it extends smoothly to the forehead and the mask's edge.

    Args:
        src_lin, tgt_lin: (h, w, 3) float32 linear RGB on the same grid.
        weight: (h, w) float32 sample weights.
        centre, scale: the face centre (x, y) and size in px, to normalise coordinates.
        degree: polynomial degree (1 = a lighting gradient, 2 = also curvature).
        stride: sample every ``stride``-th pixel in x and y (speed).
    Returns:
        (h, w) float32 ratio field, clipped to [1/max_ratio, max_ratio].
    """
    h, w = weight.shape
    ys, xs = np.mgrid[0:h:stride, 0:w:stride]
    wv = weight[::stride, ::stride]
    with np.errstate(invalid="ignore", divide="ignore"):
        log_ratio = (np.log(luminance(tgt_lin[::stride, ::stride]) + 1e-3)
                     - np.log(luminance(src_lin[::stride, ::stride]) + 1e-3))
    # samples whose log is undefined (luminance at or below -1e-3: a dim scene-linear plate's noise; NaN, Inf)
    # are left out; one of them in the fit made the whole field, and so the whole face, NaN
    sel = (wv > 0) & np.isfinite(log_ratio)
    if sel.sum() < 12:
        return np.ones((h, w), np.float32)
    d = log_ratio[sel].astype(np.float64)
    u = (xs[sel] - centre[0]) / scale
    v = (ys[sel] - centre[1]) / scale
    powers = [(k - j, j) for k in range(degree + 1) for j in range(k + 1)]  # (power of u, power of v)
    B = np.stack([u ** a * v ** b for a, b in powers], axis=-1)
    wt = wv[sel].astype(np.float64)
    coef = np.zeros(B.shape[1])
    for _ in range(3):  # iteratively reweighted: drop outliers (hair, shadows, specular spots)
        Bw = B * wt[:, None]
        try:  # weighted normal equations (a few columns, coordinates normalised to the face size)
            coef = np.linalg.solve(Bw.T @ B + 1e-9 * np.eye(B.shape[1]), Bw.T @ d)
        except np.linalg.LinAlgError:
            coef, *_ = np.linalg.lstsq(B * np.sqrt(wt)[:, None], d * np.sqrt(wt), rcond=None)
        res = d - B @ coef
        mad = float(np.median(np.abs(res))) + 1e-6
        wt = wv[sel] * (np.abs(res) < 2.5 * 1.4826 * mad)
        if wt.sum() < B.shape[1] * 4:
            break
    # evaluate separably: field = V @ C @ U.T with U[x, a] = u(x) ** a, V[y, b] = v(y) ** b
    C = np.zeros((degree + 1, degree + 1))
    for (a, b), c in zip(powers, coef):
        C[b, a] = c
    gu = (np.arange(w, dtype=np.float64) - centre[0]) / scale
    gv = (np.arange(h, dtype=np.float64) - centre[1]) / scale
    U = gu[:, None] ** np.arange(degree + 1)
    V = gv[:, None] ** np.arange(degree + 1)
    field = (V @ C @ U.T).astype(np.float32)
    return np.clip(np.exp(field), 1.0 / max_ratio, max_ratio).astype(np.float32)


def _quantile_map(x: np.ndarray, src_q: np.ndarray, tgt_q: np.ndarray, steps: int = 512) -> np.ndarray:
    """Piecewise-linear map of a (h, w) plane taking the quantiles ``src_q`` to ``tgt_q`` (tabulated on
    ``steps`` even intervals between the end quantiles); beyond the ends it scales proportionally
    (x * tgt_end / src_end), as an exposure change would in linear light."""
    sq = np.maximum.accumulate(np.asarray(src_q, np.float64))
    lo, hi = float(sq[0]), float(sq[-1])
    if hi - lo < 1e-6:
        return x * np.float32(tgt_q[-1] / hi) if hi > 1e-6 else np.full_like(x, tgt_q[-1])
    sq = sq + np.arange(sq.size) * 1e-9 * (hi - lo)  # strictly increasing for interp
    table = np.interp(np.linspace(lo, hi, steps + 1), sq, tgt_q).astype(np.float32)
    table = np.append(table, table[-1])
    t = np.clip((x - np.float32(lo)) * np.float32(steps / (hi - lo)), 0.0, float(steps))
    i = t.astype(np.int32)
    frac = t - i
    t0 = table[i]
    out = t0 + frac * (table[i + 1] - t0)
    if hi > 1e-6:
        np.copyto(out, x * np.float32(tgt_q[-1] / hi), where=x > hi)
    if lo > 1e-6:
        np.copyto(out, x * np.float32(tgt_q[0] / lo), where=x < lo)
    return out


def _quantiles(samples: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Per-column percentiles (linear interpolation between order statistics) of (n, c) samples."""
    srt = np.sort(samples, axis=0)
    pos = q / 100.0 * (len(srt) - 1)
    i0 = np.floor(pos).astype(int)
    i1 = np.minimum(i0 + 1, len(srt) - 1)
    f = (pos - i0)[:, None]
    return srt[i0] * (1.0 - f) + srt[i1] * f


def match_histograms(src_lin: np.ndarray, tgt_lin: np.ndarray, src_w: np.ndarray, tgt_w: np.ndarray,
                     levels: int = 33, trim: float = 0.5) -> np.ndarray:
    """Match each linear RGB channel's distribution over the source's weighted pixels to the target's
    (quantile mapping through ``levels`` percentiles from ``trim`` to ``100 - trim``, sampled on every
    other pixel in x and y).

    Args:
        src_lin, tgt_lin: (h, w, 3) float32 linear RGB (the grids may differ).
        src_w, tgt_w: (h, w) weights; pixels with weight > 0 count.
    Returns:
        (h, w, 3) float32 linear RGB, the source remapped; values beyond the sampled range scale
        proportionally, so highlights keep their relation to the skin.
    """
    sel_s, sel_t = src_w[::2, ::2] > 0, tgt_w[::2, ::2] > 0
    if sel_s.sum() < 8 or sel_t.sum() < 8:
        return np.array(src_lin, np.float32, copy=True)
    q = np.linspace(trim, 100.0 - trim, levels)
    qs = _quantiles(src_lin[::2, ::2][sel_s].astype(np.float64), q)  # (levels, 3)
    qt = _quantiles(tgt_lin[::2, ::2][sel_t].astype(np.float64), q)
    planes = cv2.split(np.ascontiguousarray(src_lin, dtype=np.float32))
    return cv2.merge([_quantile_map(planes[c], qs[:, c], qt[:, c]) for c in range(3)])
