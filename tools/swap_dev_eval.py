#!/usr/bin/env python3
"""Development harness for the embedded face swap.

For every ordered pair (source photo S, target photo T) of distinct people in ../shared/data/faces it
builds the linear EXR plate of T with the independent evaluator (fbeval make-plate), runs the swap the
way the server does (8-bit sRGB proxy for detection, per-face crop converted linear -> sRGB, swap,
back to linear with the sRGB EOTF, composite ``plate + mask * (face - plate)`` only where mask > 0),
writes the output EXR and scores it with fbeval swap-check. Optionally does the same for a classic
"Delaunay-triangulate + cv2.seamlessClone" swap written here for comparison.

    python tools/swap_dev_eval.py [--method ours|classic|both] [--jobs 2] [--keep DIR] [--only a,b]

fbeval is loaded in-process from ../shared/tools/fbeval.py (the same functions its CLI runs).
"""

from __future__ import annotations

import argparse
import multiprocessing
import importlib.util
import itertools
import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import OpenImageIO as oiio
from scipy.spatial import Delaunay

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FACES = SHARED / "data" / "faces"
sys.path.insert(0, str(REPO))

from inference_server.faces.dlib_models import DlibFaceModels  # noqa: E402
from inference_server.faces.sources import choose_source, prepare_sources  # noqa: E402
from inference_server.swap import SwapParams, swap_face  # noqa: E402
from inference_server.plates.colour import srgb_decode as srgb_to_linear  # noqa: E402
from inference_server.plates.colour import srgb_encode as linear_to_srgb  # noqa: E402

DEV_FACES = [
    "fr_obama.jpg", "fr_biden2.jpg", "fr_alex_lacamoire.png", "fr_rose_leslie.jpg", "dlib_tom_cruise.jpg",
    "lp_d12.jpg", "lp_d9.jpg", "st_people_0.png", "gfpgan_adele_crop.png", "dlib_lfw_john_salley.jpg",
    "if_tom_hanks_112.png", "cf_lq_0143.png",
]


def load_fbeval():
    spec = importlib.util.spec_from_file_location("fbeval", SHARED / "tools" / "fbeval.py")
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {SHARED / 'tools' / 'fbeval.py'}")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def read_rgb8(path: Path) -> np.ndarray:
    im = cv2.imread(str(path), cv2.IMREAD_COLOR)  # drops alpha
    if im is None:
        raise SystemExit(f"cannot read {path}")
    return np.ascontiguousarray(cv2.cvtColor(im, cv2.COLOR_BGR2RGB))


def read_exr(path: Path) -> tuple[np.ndarray, list[str]]:
    inp = oiio.ImageInput.open(str(path))
    if inp is None:
        raise SystemExit(f"cannot read {path}: {oiio.geterror()}")
    spec = inp.spec()
    px = inp.read_image(format=oiio.FLOAT)
    if px is None:
        raise SystemExit(f"cannot read {path}: {inp.geterror()}")
    inp.close()
    return px.reshape(spec.height, spec.width, spec.nchannels), list(spec.channelnames)


def write_exr(path: Path, px: np.ndarray, names: list[str]) -> None:
    h, w, c = px.shape
    spec = oiio.ImageSpec(w, h, c, oiio.HALF)
    spec.channelnames = tuple(names)
    spec.attribute("compression", "zip")
    out = oiio.ImageOutput.create(str(path))
    if out is None:
        raise SystemExit(f"cannot write {path}: {oiio.geterror()}")
    out.open(str(path), spec)
    out.write_image(px.astype(np.float16))
    out.close()


def proxy_rgb8(lin_rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray((linear_to_srgb(lin_rgb) * 255 + 0.5).astype(np.uint8))


def face_crop_box(lm: np.ndarray, shape_hw: tuple[int, int], grow: float = 0.6) -> tuple[int, int, int, int]:
    x0, y0 = lm.min(0)
    x1, y1 = lm.max(0)
    bw, bh = x1 - x0, y1 - y0
    h, w = shape_hw
    return (max(0, int(np.floor(x0 - grow * bw))), max(0, int(np.floor(y0 - grow * bh))),
            min(w, int(np.ceil(x1 + grow * bw)) + 1), min(h, int(np.ceil(y1 + grow * bh)) + 1))


# --------------------------------------------------------------------------------------------------
# classic baseline: Delaunay piecewise-affine warp onto the target landmarks + seamlessClone (8-bit)
def classic_swap(tgt8: np.ndarray, tlm: np.ndarray, src8: np.ndarray, slm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = tgt8.shape[:2]
    tri = Delaunay(tlm.astype(np.float64))
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    pts = np.stack([gx.ravel(), gy.ravel()], 1)
    simplex = tri.find_simplex(pts)
    ok = simplex >= 0
    T = tri.transform[simplex[ok]]
    b = np.einsum("nij,nj->ni", T[:, :2], pts[ok] - T[:, 2])
    bary = np.concatenate([b, 1 - b.sum(1, keepdims=True)], 1)
    verts = tri.simplices[simplex[ok]]
    src_pts = (bary[..., None] * slm.astype(np.float64)[verts]).sum(1)
    mx = np.full(h * w, -1.0, np.float32)
    my = np.full(h * w, -1.0, np.float32)
    mx[ok], my[ok] = src_pts[:, 0], src_pts[:, 1]
    warped = cv2.remap(src8, mx.reshape(h, w), my.reshape(h, w), cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    mask: np.ndarray = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(tlm.astype(np.int32)), 255)
    mask = cv2.erode(mask, np.ones((10, 10), np.uint8))
    # blurred-ratio colour correction, sigma = 0.75 x interocular distance
    sigma = 0.75 * float(np.linalg.norm(tlm[36:42].mean(0) - tlm[42:48].mean(0)))
    k = int(sigma) | 1
    tb = cv2.GaussianBlur(tgt8, (k, k), 0).astype(np.float64)
    wb = cv2.GaussianBlur(warped, (k, k), 0).astype(np.float64)
    wb += 128 * (wb <= 1.0)
    warped = np.clip(warped.astype(np.float64) * tb / wb, 0, 255).astype(np.uint8)
    warped = cv2.bitwise_and(warped, warped, mask=mask)
    mask = cv2.erode(mask, np.ones((10, 10), np.uint8))
    x, y, bw, bh = cv2.boundingRect(mask)
    centre = (x + bw // 2, y + bh // 2)
    out = cv2.seamlessClone(warped, tgt8, mask, centre, cv2.NORMAL_CLONE)
    changed = (out != tgt8).any(2)
    return out, changed.astype(np.float32)


# --------------------------------------------------------------------------------------------------
_MODELS: DlibFaceModels | None = None


def models() -> DlibFaceModels:
    global _MODELS
    if _MODELS is None:
        _MODELS = DlibFaceModels()
    return _MODELS


def render(method: str, plate_path: Path, out_path: Path, src_names: list[str], params: SwapParams) -> dict:
    """Swap every face of the plate, the way the server will; returns timing info."""
    m = models()
    px, names = read_exr(plate_path)
    rgb = px[..., [names.index(c) for c in "RGB"]]
    proxy = proxy_rgb8(rgb)
    dets = m.detect(proxy)
    out = px.copy()
    sources = prepare_sources([(n, read_rgb8(FACES / n)) for n in src_names], m)
    t_swap = 0.0
    for det in dets:
        x0, y0, x1, y1 = face_crop_box(det.landmarks, px.shape[:2])
        crop_lin = rgb[y0:y1, x0:x1]
        crop_enc = linear_to_srgb(crop_lin)
        lm = (det.landmarks - np.array([x0, y0], np.float32)).astype(np.float32)
        src = choose_source(sources, lm)
        t0 = time.perf_counter()
        if method == "ours":
            res = swap_face(crop_enc, lm, src, params)
            face_enc, mask = res.face, res.mask
        else:
            s8 = (src.image * 255 + 0.5).astype(np.uint8)
            t8 = (crop_enc * 255 + 0.5).astype(np.uint8)
            f8, mask = classic_swap(t8, lm, s8, src.landmarks)
            face_enc = f8.astype(np.float32) / 255
        t_swap += time.perf_counter() - t0
        face_lin = srgb_to_linear(face_enc)
        region = out[y0:y1, x0:x1]
        sel = mask > 0
        for ci, c in enumerate("RGB"):
            ch = names.index(c)
            p = region[..., ch]
            p[sel] = p[sel] + mask[sel] * (face_lin[..., ci][sel] - p[sel])
    write_exr(out_path, out, names)
    return {"faces": len(dets), "swap_s": t_swap}


def run_pair(args: tuple) -> dict:
    method, src, tgt, tmp, params = args
    fb = load_fbeval_cached()
    plate = Path(tmp) / f"plate_{tgt}.exr"
    out = Path(tmp) / f"out_{method}_{src}__{tgt}.exr"
    info = render(method, plate, out, [src], params)
    r = fb.swap_check(str(FACES / src), str(plate), str(out))
    r.update(info)
    r.update(method=method, src=src, tgt=tgt)
    return r


_FB = None


def load_fbeval_cached():
    global _FB
    if _FB is None:
        _FB = load_fbeval()
    return _FB


def summarise(rows: list[dict]) -> dict:
    ok = [r for r in rows if "d_out_src" in r]
    wins = [r for r in ok if r["d_out_src"] < r["d_out_tgt"]]
    return {
        "pairs": len(rows), "scored": len(ok),
        "frac_closer_to_src": len(wins) / max(1, len(rows)),
        "mean_d_out_src": float(np.mean([r["d_out_src"] for r in ok])) if ok else float("nan"),
        "mean_d_out_tgt": float(np.mean([r["d_out_tgt"] for r in ok])) if ok else float("nan"),
        "max_outside_changed": max((r.get("outside_changed", -1) for r in rows), default=-1),
        "nan_inf_kept": all(r.get("nan_kept") and r.get("inf_kept") for r in rows),
        "mean_swap_s": float(np.mean([r["swap_s"] / max(1, r["faces"]) for r in rows])),
        "errors": [f'{r["src"]}->{r["tgt"]}: {r["error"]}' for r in rows if "error" in r],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", choices=["ours", "classic", "both"], default="both")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--only", default="", help="comma-separated subset of face files")
    ap.add_argument("--keep", default="", help="directory to keep plates/outputs in (default: temp)")
    ap.add_argument("--param", action="append", default=[], help="SwapParams override, name=value")
    ap.add_argument("--json", default="", help="write per-pair rows here")
    a = ap.parse_args(argv)
    if not FACES.is_dir():
        print(f"no face data at {FACES}", file=sys.stderr)
        return 2
    names = [n.strip() for n in a.only.split(",") if n.strip()] or DEV_FACES
    kw = {}
    for p in a.param:
        k, v = p.split("=", 1)
        kw[k] = type(getattr(SwapParams(), k))(v) if not isinstance(getattr(SwapParams(), k), bool) else v in ("1", "true", "True")
    params = SwapParams(**kw)
    tmpdir = a.keep or tempfile.mkdtemp(prefix="swapdev_")
    Path(tmpdir).mkdir(parents=True, exist_ok=True)
    fb = load_fbeval()
    for n in names:
        plate = Path(tmpdir) / f"plate_{n}.exr"
        if not plate.exists():
            fb.make_plate(str(FACES / n), str(plate))
    methods = ["ours", "classic"] if a.method == "both" else [a.method]
    jobs = [(m, s, t, tmpdir, params) for m in methods for s, t in itertools.permutations(names, 2)]
    t0 = time.time()
    if a.jobs > 1:
        with ProcessPoolExecutor(a.jobs, mp_context=multiprocessing.get_context("spawn")) as ex:
            rows = list(ex.map(run_pair, jobs))
    else:
        rows = [run_pair(j) for j in jobs]
    for r in rows:
        print(f'{r["method"]:7s} {r["src"]:26s} -> {r["tgt"]:26s} d_src {r.get("d_out_src", float("nan")):.3f} '
              f'd_tgt {r.get("d_out_tgt", float("nan")):.3f} (src-tgt {r.get("d_src_tgt", float("nan")):.3f}) '
              f'outside {r.get("outside_changed")} {r.get("error", "")}')
    print(f"params: {params}")
    for m in methods:
        print(m, json.dumps(summarise([r for r in rows if r["method"] == m])))
    print(f"wall {time.time() - t0:.1f}s, outputs in {tmpdir}")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
