#!/usr/bin/env python3
"""Timing of the swap's two stages for one face in a 1080p linear plate.

Builds a 1920x1080 scene-linear plate with one face (a photo from ../shared/data/faces scaled so that
the face is ``--face`` px, placed on a grey background), crops it the way the server does, runs the
model stage once (timed) and the compositing stage ``--repeat`` times per set of controls (median
reported), plus the frame composite ``plate + mask * (face - plate)`` into the full plate.

    python tools/swap_composite_bench.py [--face 230] [--repeat 30] [--threads N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
FACES = REPO.parent / "shared" / "data" / "faces"
sys.path.insert(0, str(REPO))

from inference_server.compositing.classical import composite_face_crop  # noqa: E402
from inference_server.compositing.controls import CompositeControls  # noqa: E402
from inference_server.faces.dlib_models import DlibFaceModels  # noqa: E402
from inference_server.faces.geometry import face_size  # noqa: E402
from inference_server.faces.sources import prepare_sources  # noqa: E402
from inference_server.pipeline.composite import composite_face  # noqa: E402
from inference_server.pipeline.crops import face_crop_box  # noqa: E402
from inference_server.plates.colour import srgb_decode, srgb_encode  # noqa: E402
from inference_server.swap import swap_model  # noqa: E402


def read_rgb8(name: str) -> np.ndarray:
    im = cv2.imread(str(FACES / name), cv2.IMREAD_COLOR)
    if im is None:
        raise SystemExit(f"cannot read {FACES / name}")
    return np.ascontiguousarray(cv2.cvtColor(im, cv2.COLOR_BGR2RGB))


def median_ms(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    return float(np.median(times))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", default="fr_obama.jpg")
    ap.add_argument("--source", default="fr_biden2.jpg")
    ap.add_argument("--face", type=float, default=230.0, help="face size in the plate, px")
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--threads", type=int, default=0, help="cv2.setNumThreads (0 = leave as is)")
    a = ap.parse_args(argv)
    if not FACES.is_dir():
        print(f"no face data at {FACES}", file=sys.stderr)
        return 2
    if a.threads:
        cv2.setNumThreads(a.threads)
    models = DlibFaceModels()
    src = prepare_sources([("source", read_rgb8(a.source))], models)[0]

    photo = read_rgb8(a.target)
    lm = models.detect(photo)[0].landmarks
    f = a.face / face_size(lm)
    photo = cv2.resize(photo, None, fx=f, fy=f, interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC)
    plate = np.full((1080, 1920, 3), 0.18, np.float32)
    ph, pw = min(photo.shape[0], 1080), min(photo.shape[1], 1920)
    oy, ox = (1080 - ph) // 2, (1920 - pw) // 2
    plate[oy:oy + ph, ox:ox + pw] = srgb_decode(photo[:ph, :pw].astype(np.float32) / 255.0)
    rng = np.random.default_rng(0)
    plate *= (1.0 + 0.03 * rng.standard_normal(plate.shape[:2])[..., None]).astype(np.float32)  # grain

    det = models.detect(np.ascontiguousarray((srgb_encode(plate) * 255 + 0.5).astype(np.uint8)))[0]
    box = face_crop_box(det.landmarks, plate.shape[:2])
    crop_lin = np.ascontiguousarray(plate[box.slices])
    clm = (det.landmarks - np.array([box.x0, box.y0], np.float32)).astype(np.float32)
    print(f"plate 1920x1080, face {face_size(clm):.0f} px, crop {box.width}x{box.height}, "
          f"cv2 threads {cv2.getNumThreads()}")

    t0 = time.perf_counter()
    out = swap_model(srgb_encode(crop_lin), clm, src)
    t_model = (time.perf_counter() - t0) * 1000.0
    y0, x0, y1, x1 = out.box.tolist()
    print(f"model stage: {t_model:.0f} ms (work box {x1 - x0}x{y1 - y0}, payload {out.nbytes / 1e6:.2f} MB)")
    t_model2 = median_ms(lambda: swap_model(srgb_encode(crop_lin), clm, src), 3)
    print(f"model stage (median of 3): {t_model2:.0f} ms")

    cases = {
        "default": CompositeControls(),
        "blend 0.7": CompositeControls(blend=0.7),
        "regions mouth=0 eyes=0.5": CompositeControls(regions=(("eyes", 0.5), ("mouth", 0.0))),
        "feather 0.05 erode -0.03": CompositeControls(feather=0.05, erode=-0.03),
        "grain 1": CompositeControls(grain=1.0),
        "colour none": CompositeControls(colour_match="none"),
        "colour histogram": CompositeControls(colour_match="histogram"),
        "everything": CompositeControls(blend=0.8, regions=(("mouth", 0.0),), feather=0.05, erode=-0.03,
                                        grain=1.0, colour_match="histogram"),
    }
    rgb_index = [0, 1, 2]
    for name, ctl in cases.items():
        t_comp = median_ms(lambda: composite_face_crop(crop_lin, clm, out, ctl), a.repeat)
        face, mask = composite_face_crop(crop_lin, clm, out, ctl)

        def into_frame() -> None:
            frame = plate.copy()
            composite_face(frame, plate, rgb_index, box, face, mask)

        t_frame = median_ms(into_frame, a.repeat)
        print(f"composite {name:28s} {t_comp:6.1f} ms   + frame copy & composite {t_frame:5.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
