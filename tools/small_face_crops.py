#!/usr/bin/env python3
"""Before/after crops of the small faces of the group photos in ../shared/data/faces (issue 16), to look at.

Each photo is scaled so that its faces are ~40-60 px, every face is swapped with ``fr_obama.jpg``, and one sheet per
photo is written, a row per face: plate | before (``min_face`` 0: the forehead band and hairline search of large faces)
| after (``min_face`` 48 with every face picked: the small-face mode) | the pixels ``after`` changed (white) with the
target's brow line (landmarks 17..26) in red. 4x nearest-neighbour; the face size (px, landmark extent) top left.

The photos show real people: keep the sheets for internal review, never publish swapped faces of them (see
../shared/data/faces/SOURCES.md).

    python tools/small_face_crops.py --out DIR [--source fr_obama.jpg]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
FACES = REPO.parent / "shared" / "data" / "faces"
sys.path.insert(0, str(REPO))

from facebridge.srgb import linear_to_srgb8, srgb_decode
from inference_server.faces.dlib_models import DlibFaceModels
from inference_server.faces.geometry import face_size
from inference_server.faces.sources import SourceFace, prepare_sources
from inference_server.pipeline.frames import FramePlate
from inference_server.pipeline.render import RenderRequest, RenderServices, render_faces
from inference_server.pipeline.settings import RenderSettings
from inference_server.pipeline.targets import FaceTarget
from inference_server.pipeline.timing import Stopwatch

PHOTOS = (("if_t1.jpg", 0.45), ("cf_lq_whole_01.jpg", 1.0), ("gfpgan_10045.png", 0.65), ("fr_two_people.jpg", 0.3))


def load_rgb8(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SystemExit(f"{path}: cannot read")
    return np.ascontiguousarray(bgr[..., ::-1])


def render(models: DlibFaceModels, linear: np.ndarray, targets: list[FaceTarget], sources: list[SourceFace],
           min_face: float) -> np.ndarray:
    """The ``(H, W, 3)`` float32 linear frame with the faces swapped at ``min_face``."""
    request = RenderRequest(targets, sources, [s.label for s in sources],
                            RenderSettings(min_face=min_face, quality_checks=False), "small-face-crops")
    return render_faces(FramePlate(linear, [0, 1, 2], "plate"), request, RenderServices(models, None, None),
                        Stopwatch()).pixels


def face_row(linear: np.ndarray, before: np.ndarray, after: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """One face's row of tiles (uint8 RGB, 4x)."""
    size = face_size(landmarks)
    lo, hi = landmarks.min(axis=0), landmarks.max(axis=0)
    h, w = linear.shape[:2]
    x0, y0 = int(max(0, lo[0] - 0.5 * size)), int(max(0, lo[1] - 0.9 * size))
    x1, y1 = int(min(w, hi[0] + 0.5 * size)), int(min(h, hi[1] + 0.3 * size))
    tiles = [linear_to_srgb8(np.ascontiguousarray(img[y0:y1, x0:x1])) for img in (linear, before, after)]
    changed = (np.abs(after[y0:y1, x0:x1] - linear[y0:y1, x0:x1]).max(axis=2) > 0).astype(np.uint8) * 255
    marked = np.ascontiguousarray(np.stack([changed] * 3, axis=-1))
    brows = np.round(landmarks[17:27] - np.array([x0, y0], np.float32)).astype(np.int32)
    cv2.polylines(marked, [brows], False, (255, 0, 0), 1)
    row = cv2.resize(np.concatenate([*tiles, marked], axis=1), None, fx=4, fy=4, interpolation=cv2.INTER_NEAREST)
    cv2.putText(row, f"{size:.0f}px", (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 0), 1)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the sheets (outside the repository)")
    parser.add_argument("--source", default="fr_obama.jpg", help="source photo in ../shared/data/faces")
    args = parser.parse_args(argv)
    if not FACES.is_dir():
        print(f"{FACES} not found: the face photos live in ../shared", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    models = DlibFaceModels()
    sources = prepare_sources([(args.source, load_rgb8(FACES / args.source))], models)
    for name, scale in PHOTOS:
        rgb8 = load_rgb8(FACES / name)
        if scale != 1.0:
            rgb8 = np.ascontiguousarray(cv2.resize(rgb8, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))
        linear = srgb_decode(rgb8.astype(np.float32) / 255.0)
        targets = [FaceTarget(d.landmarks, d.rect, picked=True) for d in models.detect_with_fallback(rgb8, 0.25)]
        before = render(models, linear, targets, sources, 0.0)
        after = render(models, linear, targets, sources, 48.0)
        rows = [face_row(linear, before, after, t.landmarks) for t in targets]
        width = max(r.shape[1] for r in rows)
        sheet = np.concatenate([np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0))) for r in rows], axis=0)
        out = args.out / f"{Path(name).stem}_x{scale:g}_{Path(args.source).stem}.png"
        cv2.imwrite(str(out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
        print(out, "faces (px):", [round(face_size(t.landmarks)) for t in targets])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
