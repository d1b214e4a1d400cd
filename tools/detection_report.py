#!/usr/bin/env python3
"""Faces found per photo before and after the CNN fallback (issue 16), measured in one run.

For every photo in ``../shared/data/faces`` (and the same photo rolled by 45°, where HOG, a frontal upright
detector, gives up), it prints how many faces dlib's HOG detector finds alone ("before") and with the
fallback the analysis uses (``DlibFaceModels.detect_with_fallback``: the CNN on a reduced proxy where HOG
finds fewer faces than expected; "after"), with the time each took. Then the same for scikit-image's
non-face photos, where both must find nothing.

    python tools/detection_report.py [--expected N] [--json FILE]

``--expected`` is the number of faces the fallback is asked for (the analysis passes the number of active
tracks, at least 1). Images are read as 8-bit sRGB, the detectors' input.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
FACES = REPO.parent / "shared" / "data" / "faces"
sys.path.insert(0, str(REPO))

from inference_server.faces.dlib_models import DlibFaceModels

MIN_SCORE = 0.25  # the analysis's min_detection_score
NON_FACES = ("coffee", "chelsea", "rocket", "coins", "brick", "horse", "moon", "page", "hubble_deep_field")


def rolled(rgb8: np.ndarray, degrees: float) -> np.ndarray:
    """``rgb8`` rotated by ``degrees`` about its centre (reflected border)."""
    h, w = rgb8.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return np.ascontiguousarray(cv2.warpAffine(rgb8, matrix, (w, h), flags=cv2.INTER_LINEAR,
                                               borderMode=cv2.BORDER_REFLECT))


def count(models: DlibFaceModels, rgb8: np.ndarray, expected: int) -> dict[str, float]:
    """Faces HOG finds alone and with the CNN fallback, and the seconds each took."""
    t0 = time.perf_counter()
    hog = [d for d in models.detect(rgb8) if d.score >= MIN_SCORE]
    t1 = time.perf_counter()
    both = models.detect_with_fallback(rgb8, MIN_SCORE, expected=expected)
    t2 = time.perf_counter()
    return {"before": len(hog), "after": len(both), "cnn": sum(d.detector == "cnn" for d in both),
            "hog_s": t1 - t0, "fallback_s": t2 - t1}


def photos() -> list[tuple[str, np.ndarray]]:
    out = []
    for path in sorted(FACES.glob("*")):
        if path.suffix.lower() in (".jpg", ".png"):
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is not None:
                out.append((path.name, np.ascontiguousarray(bgr[..., ::-1])))
    return out


def non_faces() -> list[tuple[str, np.ndarray]]:
    from skimage import data

    out = []
    for name in NON_FACES:
        image = np.asarray(getattr(data, name)())
        if image.dtype != np.uint8:
            image = (np.clip(image, 0, 1) * 255).astype(np.uint8)
        if image.ndim == 2:
            image = np.stack([image] * 3, axis=-1)
        out.append((name, np.ascontiguousarray(image[..., :3])))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--expected", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if not FACES.is_dir():
        print(f"{FACES} not found: the face photos live in ../shared", file=sys.stderr)
        return 2
    models = DlibFaceModels()
    rows: list[tuple[str, str, dict[str, float]]] = []
    print(f"{'image':34s} {'variant':8s} {'before':>6s} {'after':>6s} {'cnn':>4s} {'HOG ms':>7s} {'fallback ms':>11s}")
    for name, rgb8 in photos():
        for variant, image in (("upright", rgb8), ("roll 45", rolled(rgb8, 45.0))):
            figures = count(models, image, args.expected)
            rows.append((name, variant, figures))
            print(f"{name:34s} {variant:8s} {figures['before']:6d} {figures['after']:6d} {figures['cnn']:4d} "
                  f"{1000 * figures['hog_s']:7.0f} {1000 * figures['fallback_s']:11.0f}")
    false_positives = 0
    for name, image in non_faces():
        figures = count(models, image, args.expected)
        false_positives += int(figures["after"])
        rows.append((name, "non-face", figures))
        print(f"{name:34s} {'non-face':8s} {figures['before']:6d} {figures['after']:6d} {figures['cnn']:4d} "
              f"{1000 * figures['hog_s']:7.0f} {1000 * figures['fallback_s']:11.0f}")
    found = [(name, f) for name, variant, f in rows if variant != "non-face"]
    before = sum(int(f["before"]) for _, f in found)
    after = sum(int(f["after"]) for _, f in found)
    fewer = [name for name, f in found if f["after"] < f["before"]]
    print(f"faces found on the face photos: {before} before, {after} after; photos with fewer after: {fewer or 'none'}; "
          f"detections on non-face photos after: {false_positives}")
    if args.json is not None:
        args.json.write_text(json.dumps([{"image": n, "variant": v, **f} for n, v, f in rows], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
