#!/usr/bin/env python3
"""Measure the two paste-back modes of an aligned swap (``--paste residual|replace``) with an oracle swapper.

The oracle is an ONNX file with inswapper_128's inputs (``target`` (1, 3, 128, 128), ``source`` (1, 512))
and an emap as its last initializer, whose output is a constant: the *source* photo's face aligned on
arcface_128 at 128 px (what a perfect 128 px swapper could at best return). For pairs of different people
in ../shared/data/faces, the target photo is scaled so its face measures ~256 and ~512 px (landmark
extent), made a linear EXR plate (fbeval make-plate: HDR highlights, a NaN and an Inf away from the face)
and swapped through the server's own pipeline (model pool, model stage, render_faces) in each mode.
Per mode and face size it reports:

- ``d_src``: dlib identity distance of the output face to the source (fbeval swap-check's ``d_out_src``;
  lower = more the source's identity);
- ``d_tgt``: the same to the target (higher = less of the target's identity left);
- ``detail``: how much of the target's own fine detail the face keeps: the plate gets per-pixel grain
  (luma noise, 8 % of the value) and ``detail`` is the share of that grain found in the output inside the
  inner face (projection of the output's change on the grain's, 1 = all kept, 0 = none);
- ``outside``: pixels changed outside fbeval's face zone (must be 0).

The compositing controls are the defaults except ``colour_match none`` (mean-std matching rescales the
face's variation, the grain included, in both modes alike) and ``grain`` (``--grain``, default 0).

    python tools/paste_eval.py [--sizes 256,512] [--pairs N] [--grain 0.0] [--json OUT]

fbeval is loaded in-process from ../shared/tools/fbeval.py (the same functions its CLI runs).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FACES = SHARED / "data" / "faces"
sys.path.insert(0, str(REPO))

from inference_server.faces.dlib_models import DlibFaceModels  # noqa: E402
from inference_server.faces.geometry import face_size  # noqa: E402
from inference_server.faces.sources import prepare_sources  # noqa: E402
from inference_server.models.alignment import estimate_alignment, points5_from_68, warp_to_model  # noqa: E402
from inference_server.models.pool import ModelPool  # noqa: E402
from inference_server.pipeline.render import RenderRequest, RenderServices, render_faces  # noqa: E402
from inference_server.pipeline.settings import RenderSettings  # noqa: E402
from inference_server.pipeline.stages import Stage, with_paste  # noqa: E402
from inference_server.pipeline.targets import FaceTarget, detect_targets  # noqa: E402
from inference_server.pipeline.frames import FramePlate  # noqa: E402
from inference_server.pipeline.timing import Stopwatch  # noqa: E402
from inference_server.plates.colour import plate_colourspace  # noqa: E402
from inference_server.plates.image_file import read_plate  # noqa: E402
from inference_server.server.model_stages import choose_stage  # noqa: E402
from inference_server.server.sessions import SessionParams  # noqa: E402

PHOTOS = ("fr_obama.jpg", "fr_biden2.jpg", "fr_rose_leslie.jpg", "dlib_tom_cruise.jpg", "lp_d9.jpg", "lp_d12.jpg",
          "fr_alex_lacamoire.png", "st_people_0.png")
"""Single-face photos of different people; pair k is (source PHOTOS[k], target PHOTOS[k + 1])."""
ORACLE_SIZE = 128
ORACLE_TEMPLATE = "arcface_128"
GRAIN = 0.08         # relative luma noise added to the plate to measure detail kept
DETAIL_SIGMA = 1.0   # px: the detail measured is what a Gaussian of this sigma removes


def load_fbeval() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fbeval", SHARED / "tools" / "fbeval.py")
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {SHARED / 'tools' / 'fbeval.py'}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the oracle swapper ---------------------------------------------------------------------------------------

def aligned_face(rgb8: np.ndarray, landmarks: np.ndarray, size: int = ORACLE_SIZE,
                 template: str = ORACLE_TEMPLATE) -> np.ndarray:
    """The face of ``rgb8`` (uint8 RGB) at ``landmarks`` aligned on ``template`` at ``size`` px, as the
    swap stage aligns its target: ``(size, size, 3)`` float32 sRGB-encoded RGB in [0, 1]."""
    matrix = estimate_alignment(points5_from_68(landmarks), template, size)
    return warp_to_model(rgb8.astype(np.float32) / 255.0, matrix, size)


def write_oracle(path: Path, face: np.ndarray, emap: np.ndarray | None = None) -> Path:
    """An ONNX file with inswapper_128's inputs whose output is ``face`` ((128, 128, 3) RGB [0, 1]) whatever
    the inputs (both tied in with a zero weight), and an emap ((512, 512), last initializer) so it loads as
    an inswapper."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    emap = np.eye(512, dtype=np.float32) if emap is None else np.asarray(emap, np.float32)
    nodes = [helper.make_node("ReduceMean", ["target"], ["t_mean"], keepdims=0),
             helper.make_node("ReduceMean", ["source"], ["s_mean"], keepdims=0),
             helper.make_node("Add", ["t_mean", "s_mean"], ["ts"]),
             helper.make_node("Mul", ["ts", "zero"], ["tied"]),
             helper.make_node("Add", ["face", "tied"], ["output"])]
    face_nchw = np.ascontiguousarray(np.asarray(face, np.float32).transpose(2, 0, 1)[None])
    graph = helper.make_graph(
        nodes, "inswapper_oracle",
        [helper.make_tensor_value_info("target", TensorProto.FLOAT, [1, 3, 128, 128]),
         helper.make_tensor_value_info("source", TensorProto.FLOAT, [1, 512])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 128, 128])],
        initializer=[numpy_helper.from_array(np.zeros((), np.float32), "zero"),
                     numpy_helper.from_array(face_nchw, "face"),
                     numpy_helper.from_array(emap, "emap")])  # emap last, as in the real file
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="paste-eval")
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def oracle_stage(models_dir: Path, cache_dir: Path, paste: str) -> Stage:
    """The swap stage a session with ``--swapper inswapper_128 --paste paste`` gets from a models folder
    holding the oracle as inswapper_128.onnx (no embedder: unverified set-up, allowed here)."""
    pool = ModelPool(models_dir, cache_dir, "cpu", allow_unverified=True)
    params = SessionParams(mode="swap", swapper="inswapper_128", allow_unverified=True, paste=paste).validated()
    stage, _ = choose_stage(pool, params)
    swap = with_paste(stage, paste)
    assert swap is not None
    return swap


# -- plates and measures ---------------------------------------------------------------------------------------

def scaled_photo(rgb8: np.ndarray, models: DlibFaceModels, face_px: float) -> np.ndarray:
    """``rgb8`` resized so that its largest face measures ``face_px`` (landmark extent)."""
    (face,) = models.detect(rgb8)[:1]
    factor = face_px / face_size(face.landmarks)
    return cv2.resize(rgb8, None, fx=factor, fy=factor,
                      interpolation=cv2.INTER_AREA if factor < 1.0 else cv2.INTER_CUBIC)


def grained(pixels: np.ndarray, amount: float, seed: int = 11) -> np.ndarray:
    """``(H, W, C)`` plate with per-pixel luma grain on R, G, B: ``x * (1 + amount * n)``, n ~ N(0, 1)."""
    noise = np.random.default_rng(seed).standard_normal(pixels.shape[:2]).astype(np.float32)
    out = pixels.copy()
    out[..., :3] = pixels[..., :3] * (1.0 + np.float32(amount) * noise[..., None])
    return out


def inner_face(shape_hw: tuple[int, int], landmarks: np.ndarray) -> np.ndarray:
    """(H, W) bool: the landmarks' hull (jaw and brows) eroded by 5 % of the face size."""
    hull = cv2.convexHull(np.asarray(landmarks, np.float32).astype(np.int32))
    mask = np.zeros(shape_hw, np.uint8)
    cv2.fillConvexPoly(mask, hull, 1)
    k = max(3, int(0.05 * face_size(landmarks)) | 1)
    return cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))) > 0


def high_pass(image: np.ndarray, sigma: float = DETAIL_SIGMA) -> np.ndarray:
    return image - cv2.GaussianBlur(image, (0, 0), sigma)


def detail_kept(out_clean: np.ndarray, out_grain: np.ndarray, plate_clean: np.ndarray, plate_grain: np.ndarray,
                zone: np.ndarray) -> float:
    """Share of the plate's added grain found in the output inside ``zone`` (fine scale, luma):
    ``<d_out, d_plate> / <d_plate, d_plate>`` with ``d`` the high-passed grained-minus-clean difference."""
    def luma(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            d = np.nan_to_num(a[..., :3] - b[..., :3], posinf=0.0, neginf=0.0).astype(np.float32)
        return high_pass(d @ np.array([0.2126, 0.7152, 0.0722], np.float32))

    plate, out = luma(plate_grain, plate_clean)[zone], luma(out_grain, out_clean)[zone]
    return float(np.dot(out, plate) / max(np.dot(plate, plate), 1e-20))


@dataclass(frozen=True)
class Row:
    source: str
    target: str
    size: int
    paste: str
    d_src: float
    d_tgt: float
    d_plate_src: float
    detail: float
    outside: int


def render(plate_path: Path, targets: Sequence[FaceTarget] | None, sources: list, stage: Stage, grain: float,
           models: DlibFaceModels) -> tuple[np.ndarray, list[FaceTarget], object]:
    """The plate at ``plate_path`` swapped with ``stage`` (faces found on it when ``targets`` is None)."""
    from inference_server.compositing.controls import CompositeControls

    plate = read_plate(str(plate_path))
    rgb_index = plate.channel_index(("R", "G", "B"))
    colourspace = plate_colourspace("", plate.spec.get_string_attribute("oiio:ColorSpace"))
    found = list(targets) if targets is not None else detect_targets(plate.pixels, rgb_index, models, colourspace,
                                                                     0.0, Stopwatch())[:1]
    controls = CompositeControls(grain=grain, colour_match="none")  # (colour matching rescales the grain too)
    settings = RenderSettings(colourspace=colourspace, controls=controls, stage=stage, quality_checks=False)
    outcome = render_faces(FramePlate(plate.pixels, rgb_index, "plate"),
                           RenderRequest(found, sources, [s.label for s in sources], settings, "paste-eval"),
                           RenderServices(models, None, None), Stopwatch())
    return outcome.pixels, found, plate.spec


def evaluate(pairs: int, sizes: Sequence[int], grain: float, work: Path) -> list[Row]:
    fbeval = load_fbeval()
    models = DlibFaceModels()
    rows = []
    for k in range(pairs):
        source_name, target_name = PHOTOS[k % len(PHOTOS)], PHOTOS[(k + 1) % len(PHOTOS)]
        source_rgb = fbeval.read_rgb8(str(FACES / source_name))
        (source,) = prepare_sources([(source_name, source_rgb)], models)
        (src_face,) = models.detect(source_rgb)[:1]
        oracle_dir = work / f"oracle_{k}"
        write_oracle(oracle_dir / "inswapper_128.onnx", aligned_face(source_rgb, src_face.landmarks))
        stages = {paste: oracle_stage(oracle_dir, work / "cache", paste) for paste in ("residual", "replace")}
        for size in sizes:
            png = work / f"target_{k}_{size}.png"
            cv2.imwrite(str(png), cv2.cvtColor(scaled_photo(fbeval.read_rgb8(str(FACES / target_name)), models, size),
                                               cv2.COLOR_RGB2BGR))
            clean_path, grain_path = work / f"plate_{k}_{size}.exr", work / f"plate_{k}_{size}_grain.exr"
            fbeval.make_plate(str(png), str(clean_path))
            clean, names = fbeval.read_exr(str(clean_path))
            fbeval.write_exr(str(grain_path), grained(clean, GRAIN), names)
            found = None
            for paste, stage in stages.items():
                out_clean, found, spec = render(clean_path, found, [source], stage, grain, models)
                out_grain, _, _ = render(grain_path, found, [source], stage, grain, models)
                out_path = work / f"out_{k}_{size}_{paste}.exr"
                fbeval.write_exr(str(out_path), out_clean, names)
                check = fbeval.swap_check(str(FACES / source_name), str(clean_path), str(out_path))
                zone = inner_face(clean.shape[:2], found[0].landmarks)
                rows.append(Row(source_name, target_name, size, paste, check.get("d_out_src", float("nan")),
                                check.get("d_out_tgt", float("nan")), check.get("d_src_tgt", float("nan")),
                                detail_kept(out_clean, out_grain, clean, grained(clean, GRAIN), zone),
                                int(check["outside_changed"])))
    return rows


def table(rows: Sequence[Row]) -> str:
    lines = [f"{'source':<22}{'target':<22}{'size':>5} {'paste':<9}{'d_src':>7}{'d_tgt':>7}{'d_src_tgt':>10}"
             f"{'detail':>8}{'outside':>8}"]
    for r in rows:
        lines.append(f"{r.source:<22}{r.target:<22}{r.size:>5} {r.paste:<9}{r.d_src:>7.3f}{r.d_tgt:>7.3f}"
                     f"{r.d_plate_src:>10.3f}{r.detail:>8.3f}{r.outside:>8d}")
    lines.append("")
    lines.append(f"{'mean over pairs':<44}{'size':>5} {'paste':<9}{'d_src':>7}{'d_tgt':>7}{'':>10}{'detail':>8}")
    for size in sorted({r.size for r in rows}):
        for paste in ("residual", "replace"):
            sel = [r for r in rows if r.size == size and r.paste == paste]
            if sel:
                lines.append(f"{'':<44}{size:>5} {paste:<9}{np.nanmean([r.d_src for r in sel]):>7.3f}"
                             f"{np.nanmean([r.d_tgt for r in sel]):>7.3f}{'':>10}"
                             f"{np.mean([r.detail for r in sel]):>8.3f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256,512", help="target face sizes, px (landmark extent)")
    parser.add_argument("--pairs", type=int, default=len(PHOTOS), help="source/target pairs (ring over PHOTOS)")
    parser.add_argument("--grain", type=float, default=0.0, help="the grain setting (plate detail put back)")
    parser.add_argument("--json", default="", help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        rows = evaluate(args.pairs, [int(s) for s in args.sizes.split(",")], args.grain, Path(tmp))
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps([r.__dict__ for r in rows], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
