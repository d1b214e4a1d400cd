"""Embedded classical face enhancer on CPU: milliseconds per face crop at 256, 512 and 1024 px.

The face is scikit-image's astronaut (shipped with the package, no test data needed), found with the
embedded dlib models and cut like the server cuts a face (landmark box grown by 0.6 per side), resized
to square crops of 256, 512 and 1024 px with light Gaussian noise (sigma 0.01) added so the denoiser
has work to do. Default settings. Baseline measured in the same run on the same crop: one
``cv2.GaussianBlur`` with the enhancer's widest sigma (3 x detail_radius x inter-ocular distance).
Printed per size: median ms of the enhancer, of the baseline, and their ratio.

Usage: python benchmarks/enhancer.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

import cv2
import numpy as np

from inference_server.faces.dlib_models import DlibFaceModels
from inference_server.restore.enhancer import (
    ENHANCER_ID,
    EnhancerSettings,
    enhance_face,
)


def astronaut_crop(models: DlibFaceModels) -> tuple[np.ndarray, np.ndarray]:
    """Square face crop (float32 sRGB-encoded [0, 1]) of the astronaut and its 68 landmarks in crop pixels."""
    from skimage import data

    rgb8 = np.ascontiguousarray(data.astronaut())
    landmarks = models.detect(rgb8)[0].landmarks
    lo, hi = landmarks.min(0), landmarks.max(0)
    centre, side = (lo + hi) / 2.0, float(max(hi - lo)) * 2.2
    x0 = int(max(0, centre[0] - side / 2))
    y0 = int(max(0, centre[1] - side / 2))
    side_px = int(min(side, rgb8.shape[1] - x0, rgb8.shape[0] - y0))
    crop = rgb8[y0:y0 + side_px, x0:x0 + side_px].astype(np.float32) / 255.0
    return crop, (landmarks - [x0, y0]).astype(np.float32)


def median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000.0)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    settings = EnhancerSettings()
    crop, landmarks = astronaut_crop(DlibFaceModels())
    rng = np.random.default_rng(0)
    print(f"{ENHANCER_ID}, default settings, CPU ({cv2.getNumThreads()} OpenCV threads), median of {args.repeats}")
    for size in (256, 512, 1024):
        scale = size / crop.shape[1]
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
        image: np.ndarray = cv2.resize(crop, (size, size), interpolation=interpolation)
        image = np.clip(image + rng.normal(0.0, 0.01, image.shape).astype(np.float32), 0.0, 1.0)
        points = (landmarks + 0.5) * scale - 0.5
        iod = float(np.linalg.norm(points[42:48].mean(0) - points[36:42].mean(0)))
        sigma = 3.0 * settings.detail_radius * iod
        enhancer = median_ms(lambda: enhance_face(image, points, settings), args.repeats)  # noqa: B023
        baseline = median_ms(lambda: cv2.GaussianBlur(image, (0, 0), sigma), args.repeats)  # noqa: B023
        print(f"{size:5d} px (eyes {iod:5.1f} px apart): enhancer {enhancer:7.1f} ms | one GaussianBlur "
              f"(sigma {sigma:.1f} px) {baseline:6.2f} ms | ratio {enhancer / baseline:6.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
